"""What every experiment record carries (commit, hardware, speed-relevant environment) and
the one writer of records: atomic JSON, paths relative to the working directory."""
import json
import os
import platform
import subprocess

import torch

from recbole_eager.utils import PROJECT_ROOT, atomic_write


def git_commit():
    """HEAD, with ``-dirty`` when tracked code differs from it (``results/`` does not count:
    benchmarks rewrite it while they run); ``$RECBOLE_EAGER_COMMIT`` when set (a copy of
    the tree on a GPU machine, whose ``.git`` need not match what was copied)."""
    if os.environ.get("RECBOLE_EAGER_COMMIT"):
        return os.environ["RECBOLE_EAGER_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hardware(threads=True):
    """The GPU, or the CPU model and cores (and this process's torch threads if ``threads``)."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores" + (f", torch threads {torch.get_num_threads()}" if threads else "")


SPEED_ENVIRONMENT = ("MALLOC_", "OMP_", "MKL_", "KMP_", "GOMP_", "LD_PRELOAD")


def speed_environment():
    """Environment variables that change CPU speed (allocator, thread pools, preloaded
    libraries), so a record says what its seconds ran under."""
    return {name: value for name, value in sorted(os.environ.items()) if name.startswith(SPEED_ENVIRONMENT)}


def portable_path(path):
    """``path`` relative to the working directory, so records name no folder of the machine
    that wrote them (``None`` stays ``None``)."""
    return None if path is None else os.path.relpath(os.path.abspath(path))


def portable_command(argv, program="run_hyper.py"):
    """``python program argv`` for a record, absolute paths (bare or as a ``key=`` value) made
    :func:`portable_path`."""
    def arg(a):
        key, sep, value = a.partition("=")
        if sep and os.path.isabs(value):
            return f"{key}={portable_path(value)}"
        return portable_path(a) if os.path.isabs(a) else a

    return " ".join(["python", program, *(arg(a) for a in argv)])


def write_record(path, record):
    """``record`` plus commit, hardware and speed environment (unless given), as JSON."""
    record = {"commit": git_commit(), "hardware": hardware(), "environment": speed_environment(), **record}
    atomic_write(path, json.dumps(record, indent=2))
    return record
