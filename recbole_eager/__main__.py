"""Train and evaluate EAGER or any RecBole model under the paper's protocol.

    python -m recbole_eager --model=SASRec --dataset=amazon-beauty [--config_files="a.yaml b.yaml"] [--key=value ...]

Any other ``--key=value`` overrides a config key, as in RecBole's ``run_recbole.py``.
"""
import argparse
import sys

import torch

from recbole_eager.quick_start import run_recbole_eager
from recbole_eager.utils import RecBoleEagerError

COMMON_KEYS = """common config keys (--key=value):
  --epochs=300 --stopping_step=10 --learning_rate=0.001 --train_batch_size=1024 --seed=2024
  --data_path=dataset/ --checkpoint_dir=saved --show_progress=True --train_time_budget=SECONDS
  --resume_from=saved/<Model>-...-last.pth   continue an interrupted run after its last finished epoch
  --exclude_history=False --sequence_order=time --report_best_test=False   (protocol options)
  EAGER: --lambda1=1.0 --lambda2=1.0 --use_gct=True --use_stt_recon=True --use_stt_recog=True
         --kmeans_k=256 --kmeans_balanced=True --beam_size=20 --merge_rule=confidence --precision=float32
  all defaults: recbole_eager/properties/ (overall.yaml, model/<Model>.yaml, dataset/<dataset>.yaml)"""


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=COMMON_KEYS, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--model", "-m", default="EAGER", help="model name (default: EAGER)")
    parser.add_argument("--dataset", "-d", default="eager-tiny", help="dataset name (default: eager-tiny)")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    config_files = args.config_files.split() if args.config_files else None
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.argv = sys.argv[:1] + rest  # RecBole's Config reads the other --key=value pairs from here
    try:
        run_recbole_eager(model=args.model, dataset=args.dataset, config_file_list=config_files)
    except RecBoleEagerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last finished epoch is saved in checkpoint_dir (saved/ by default); "
              "continue with --resume_from=<its -last.pth>", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
