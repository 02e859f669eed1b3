"""Hyper-parameter sweep with Ray Tune (EAGER's lambda1/lambda2 or any config key).

    python run_hyper.py --model=EAGER --dataset=amazon-beauty \\
        --params_file=properties/hyper/eager_lambda.hyper [--config_files="a.yaml b.yaml"] \\
        [--num_samples=1] [--max_concurrent=2] [--cpus_per_trial=1] [--gpus_per_trial=0] \\
        [--scheduler=none|asha] [--address=auto] [--name=NAME] [--output_dir=results/tune] [--resume|--report_only]
        [--key=value ...]

The params file uses RecBole's format (``lambda1 choice [0,0.5,1,2]``, ``dropout_prob
uniform 0.1,0.5``, ``learning_rate loguniform -8,0`` with natural-log bounds, ``n_layers
quniform 1,4,1``). With ``--algo=grid`` (default) every choice is a grid axis; any other
``--key=value`` is fixed for every trial. The best trial is the one with the best
validation metric (``valid_metric``); test metrics are reported, never used to select.
Writes <output_dir>/<dataset>-<model>-<name>.{md,csv,png} and ...-best.yaml; Ray's files go
to saved/ray_results/<name> in the working directory.
"""
import argparse
import sys

from recbole_eager.utils import RecBoleEagerError


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--model", "-m", default="EAGER", help="model name (default: EAGER)")
    p.add_argument("--dataset", "-d", default="eager-tiny", help="dataset name (default: eager-tiny)")
    p.add_argument("--config_files", default=None, help="space-separated fixed YAML files")
    p.add_argument("--params_file", default="properties/hyper/eager_lambda.hyper", help="RecBole hyper-parameter file")
    p.add_argument("--algo", choices=["grid", "random"], default="grid", help="grid: all choice combinations; random: sample")
    p.add_argument("--num_samples", type=int, default=None, help="grid: repeats of the grid (default 1); random: trials (default 10)")
    p.add_argument("--max_concurrent", type=int, default=None, help="most trials at once (default: as resources allow)")
    p.add_argument("--cpus_per_trial", type=float, default=1.0)
    p.add_argument("--gpus_per_trial", type=float, default=0.0, help="fractions share a GPU, e.g. 0.5")
    p.add_argument("--scheduler", choices=["none", "asha"], default="none", help="asha: stop weak trials on the per-epoch valid metric")
    p.add_argument("--grace_period", type=int, default=1, help="ASHA: validations before a trial may be stopped")
    p.add_argument("--reduction_factor", type=int, default=2, help="ASHA reduction factor")
    p.add_argument("--address", default=None, help="join a running Ray cluster (e.g. auto or ray://host:10001)")
    p.add_argument("--num_cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--name", default=None, help="experiment name (default: the params file's name)")
    p.add_argument("--storage_path", default="saved/ray_results", help="Ray results folder (default: saved/ray_results)")
    p.add_argument("--output_dir", default="results/tune", help="report folder (default: results/tune)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted sweep --name in --storage_path; finished trials are not rerun")
    p.add_argument("--report_only", action="store_true", help="write the reports of sweep --name in --storage_path as it stands; runs nothing")
    p.add_argument("--trial_logs", action="store_true", help="show the trials' RecBole logs on this console")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, rest = build_parser().parse_known_args(argv)
    saved_argv, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config reads sys.argv: the overrides go in as a config dict
    try:
        from recbole_eager.config import parse_overrides
        from recbole_eager.experiments.records import portable_command
        from recbole_eager.experiments.tune import run_hyper

        overrides = parse_overrides(rest)
        sweep = run_hyper(
            args.model, args.dataset, args.params_file,
            config_files=args.config_files.split() if args.config_files else None,
            overrides=overrides, name=args.name, algo=args.algo, num_samples=args.num_samples,
            max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial, scheduler=args.scheduler, grace_period=args.grace_period,
            reduction_factor=args.reduction_factor, address=args.address, num_cpus=args.num_cpus,
            storage_path=args.storage_path, output_dir=args.output_dir, log_to_driver=args.trial_logs,
            resume=args.resume, report_only=args.report_only,
            command=portable_command([a for a in argv if a not in ("--resume", "--report_only")]),  # the sweep's own
        )
    except RecBoleEagerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved_argv
    failed = [r for r in sweep.rows if r["status"] == "failed"]
    print(f"\n{len(sweep.rows)} trials, {len(failed)} failed")
    for row in failed:
        print(f"  failed {row['trial_id']} {row['params']}: {row['error']}")
    if sweep.best is None:
        print("no trial finished: no best config", file=sys.stderr)
        return 1
    best = sweep.best
    print(f"best (valid {sweep.valid_metric}={best['best_valid_score']:.4f}): {best['params']}")
    for kind, path in sweep.paths.items():
        print(f"  {kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
