"""Write data/reference/changshou_road_areas.toml from seed 000 (the annex's two lists).

Usage: .venv/bin/python scripts/reference_changshou.py [SEED] [OUT]
Prints the tables it read; the test (tests/gis/test_reports_reference.py) parses the seed
again and compares with the file, so a hand edit of the file fails the tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gis.reports import reference


def main(argv: list[str]) -> int:
    seed = Path(argv[1]) if len(argv) > 1 else reference.SEED
    out = Path(argv[2]) if len(argv) > 2 else reference.DATA_FILE
    ref = reference.read_seed(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(reference.to_toml(ref, f"seeds/{seed.name}"), encoding="utf-8")
    for key, listings in (("type", ref.by_type), ("households", ref.by_households)):
        counts = " / ".join(str(len(lst.names)) for lst in listings)
        print(f"by {key}: {counts}")
    print(f"areas: {len(ref.areas)}; only in the type list: {ref.only_in_type_list}; "
          f"only in the households list: {ref.only_in_households_list}")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
