"""Train and evaluate EAGER or any RecBole model under the paper's protocol (same as
``python -m recbole_eager``).

    python run_recbole_eager.py --model=SASRec --dataset=amazon-beauty [--config_files="a.yaml b.yaml"] [--key=value ...]
"""
import sys

from recbole_eager.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
