"""Seed task 8 (7-job_creator.js): eleven jobs on push_notification_code_2.

The code is pykue.apps.notifications.run_creator (read it there), so `pykue demo` can run
the same program from a bare install.
"""

from pykue.apps.notifications import main

if __name__ == "__main__":
    main(["creator"])
