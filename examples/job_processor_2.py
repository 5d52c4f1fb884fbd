"""Seed task 9 (7-job_processor.js): two at a time, blacklisted numbers fail.

The code is pykue.apps.notifications.send_notification / run_processor (read it there).
"""

from pykue.apps.notifications import main

if __name__ == "__main__":
    main(["processor"])
