"""One rank of ``ember.multiprocessing.spawn``'s MPI path (NOTE [ spawn over MPI ] in
``spawn.py``), started by ``mpiexec``: reads the parent's preparation data, environment and
``(fn, args)`` from the job folder, runs ``fn(rank, *args)`` and records how it ended."""
import os
import pickle
import sys
import traceback


def _orphan_watch(parent_pid: int) -> None:
    """Exit when the spawning process is gone: nobody would collect this one otherwise."""
    import threading
    import time

    def watch():
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="ember-spawn-orphan-watch", daemon=True).start()


def main() -> None:
    folder, parent_pid = sys.argv[1], int(sys.argv[2])
    _orphan_watch(parent_pid)
    rank = int(os.environ.get("PMI_RANK", "0"))
    with open(os.path.join(folder, f"pid.{rank}"), "w") as fh:
        fh.write(str(os.getpid()))
    with open(os.path.join(folder, "job.pickle"), "rb") as fh:
        prep, env, payload = pickle.load(fh)
    size = int(os.environ.get("PMI_SIZE", "1"))
    os.environ.update(env)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(size),
                       "LOCAL_WORLD_SIZE": str(size), "GROUP_RANK": "0"})
    try:
        import multiprocessing.spawn as mp_spawn
        mp_spawn.prepare(prep)  # the parent's sys.path, cwd and main module
        fn, args = pickle.loads(payload)
        fn(rank, *args)
    except KeyboardInterrupt:
        pass
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code:
            _end(folder, f"exit.{rank}", code, code)
    except BaseException:
        _end(folder, f"error.{rank}", traceback.format_exc(), 1)


def _end(folder: str, name: str, what, code: int) -> None:
    """Record the failure, then leave at once: MPI_Finalize would wait for the other ranks,
    which may be blocked on this one; mpiexec ends them when a rank fails."""
    with open(os.path.join(folder, name), "wb") as fh:
        pickle.dump(what, fh)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
