# Sourced by the device scripts: the carried wheels, numpy-2 aliases for RecBole, one dataset.
#   . scripts/device_env.sh COMMIT DATASET
# Needs .whl/ (recbole 1.2.1, pandas 2.3.3 and what the image lacks) and .devcarry/DATASET.tar.xz,
# or an earlier call's bench/site and bench/data on a machine still warm (both are kept there).
export PYTHONUNBUFFERED=1 RECBOLE_EAGER_COMMIT=$1 RECBOLE_EAGER_DATA=$PWD/bench/data
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target bench/site .whl/*.whl || exit 1
fi
[ -d bench/site/recbole ] || { echo "no wheels: carry .whl/"; exit 1; }
# The image's numpy is 2.x; RecBole 1.2.1 assigns aliases numpy 2 removed.
cat > bench/site/sitecustomize.py <<'PY'
import numpy as np
for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
    if not hasattr(np, old):
        setattr(np, old, new)
PY
export PYTHONPATH=$PWD/bench/site:$PWD
mkdir -p bench/data
[ -f ".devcarry/$2.tar.xz" ] && { tar -C bench/data -xJf ".devcarry/$2.tar.xz" || exit 1; }
[ -f "bench/data/$2/$2.inter" ] || { echo "no data: carry .devcarry/$2.tar.xz"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.used,utilization.gpu --format=csv
python3 -c "import torch, numpy, pandas, recbole; print('torch', torch.__version__, 'numpy', numpy.__version__, 'pandas', pandas.__version__, 'recbole', recbole.__version__, torch.cuda.get_device_name(0))"
