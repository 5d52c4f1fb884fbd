"""Write the README's list of each twin's public names from the classes, or check it.

python scripts/twin_names.py          # rewrite the block between the twin-names markers
python scripts/twin_names.py --check  # exit 1 if the README's list is not the classes'
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import pykue  # noqa: E402

README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- twin-names[^\n]*-->\n).*?(<!-- /twin-names -->)", re.DOTALL)


def _public(names: object) -> list[str]:
    return sorted(n for n in dir(names) if not n.startswith("_"))


def render() -> str:
    queue = pykue.create_queue("redis://127.0.0.1:1/0")  # connects lazily: no server needed
    queue_names = sorted(set(_public(pykue.Queue)) | {n for n in vars(queue) if not n.startswith("_")})
    queue.client.close()
    lines = [("`Queue` / `AsyncQueue`", queue_names), ("`Job` / `AsyncJob`", _public(pykue.Job))]
    return "".join(f"- {head}: {', '.join(f'`{n}`' for n in names)}\n" for head, names in lines)


def main(argv: list[str]) -> int:
    text = README.read_text()
    want = BLOCK.sub(lambda m: m.group(1) + render() + m.group(2), text, count=1)
    if want == text:
        return 0
    if "--check" in argv:
        print("README's twin names are stale; run python scripts/twin_names.py", file=sys.stderr)
        return 1
    README.write_text(want)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
