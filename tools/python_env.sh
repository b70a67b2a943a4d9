# Sourced by the launchers (dist_train.sh, dist_test.sh, slurm_train.sh) with ROOT set to the repository:
# PYTHON is the caller's if given, else the project's .venv when it exists (make install), else `python`;
# the repository goes on PYTHONPATH.
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        PYTHON=python
    fi
fi
export PYTHONPATH="$ROOT:${PYTHONPATH:-}"
