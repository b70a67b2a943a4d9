"""The table and the plot of a probe sweep: python tools/analysis/probe_report.py WORK_DIR [--out DIR]
-> probe_report.md, probe_report.csv (block x lr -> mIoU, best per block) and probe_report.png."""
import argparse
import sys

from mmseg_custom.probing.report import write_probe_report


def main() -> int:
    parser = argparse.ArgumentParser(description='Table and plot of a probe sweep')
    parser.add_argument('work_dir', help='the work dir of a probe sweep run (tools/train.py or tools/test.py)')
    parser.add_argument('--out', help='where to write the report (default: WORK_DIR)')
    args = parser.parse_args()
    try:
        paths = write_probe_report(args.work_dir, args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(paths['markdown'].read_text())
    for kind, path in paths.items():
        print(f'{kind}: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
