"""Train and evaluate EAGER or any RecBole model under the paper's protocol.

    python -m recbole_eager --model=SASRec --dataset=amazon-beauty [--config_files="a.yaml b.yaml"] [--key=value ...]

Any other ``--key=value`` overrides a config key, as in RecBole's ``run_recbole.py``.
"""
import argparse
import sys

from recbole_eager.quick_start import run_recbole_eager
from recbole_eager.utils import RecBoleEagerError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="EAGER", help="model name (default: EAGER)")
    parser.add_argument("--dataset", "-d", default="eager-tiny", help="dataset name (default: eager-tiny)")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files")
    args, _ = parser.parse_known_args(argv)
    config_files = args.config_files.split() if args.config_files else None
    try:
        run_recbole_eager(model=args.model, dataset=args.dataset, config_file_list=config_files)
    except RecBoleEagerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
