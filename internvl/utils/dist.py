"""Process-group environment for one process (DeepSpeed always starts a process group; without
RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT it tries MPI discovery)."""
import os
import socket


def single_process_env() -> None:
    """Set the variables of a one-process group where they are unset, with a free port on loopback."""
    if 'MASTER_PORT' not in os.environ:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            os.environ['MASTER_PORT'] = str(s.getsockname()[1])
    for key, value in (('RANK', '0'), ('LOCAL_RANK', '0'), ('WORLD_SIZE', '1'), ('MASTER_ADDR', '127.0.0.1')):
        os.environ.setdefault(key, value)
