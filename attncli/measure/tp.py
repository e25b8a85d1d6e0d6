"""Tensor-parallel measurement on torch.distributed: a layer sharded Megatron-style over T ranks.

Two ways in, one measurement:
- `attncli bench --tp T` starts T ranks itself with torch.multiprocessing (spawn) on this machine:
  gloo on the CPU, NCCL on CUDA with one GPU per rank (cuda:0 … cuda:T-1). The rendezvous is a
  torch TCPStore served by this process on a free loopback port (127.0.0.1 only; gloo and NCCL are
  told to use the loopback interface too). Jobs go to the ranks and rows come back over
  multiprocessing queues; every tensor exchanged between ranks goes through torch.distributed.
- under `torchrun` (its RANK, WORLD_SIZE, LOCAL_RANK and TORCHELASTIC_RUN_ID in the environment)
  every process is one rank: attncli joins the process group torchrun set up (env://), each rank
  runs the same jobs in the same order, and only rank 0 prints and writes files.

Each rank builds the whole layer from the seed (the same weights on every rank), keeps its shard
(variants/sharding.py) and runs it; the output projection's partial sums are all-reduced, so every
rank ends with the layer's whole output. Timing: rounds aligned by a barrier, each rank timing
its own call with its host clock around a device synchronisation (CLOCK_MONOTONIC, one clock on
one machine; across nodes only durations are compared); every rank runs the same number of
rounds. The row's latency is the slowest rank's median; `allreduce_ms` is the slowest rank's
median of the all-reduce alone on a tensor of the output's shape, timed the same way.

Failure: a rank that raises, dies or goes silent for `timeout` seconds ends the run with one line
naming the rank (exit 3); every rank process is ended before the error is raised.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import signal
import sys
import time

from .. import registry
from ..errors import EXIT_UNAVAILABLE, AttncliError, DeviceError, InputError

DEFAULT_TIMEOUT_S = 300.0  # silence (no progress from any rank) that ends a run; --tp-timeout
GRACE_S = 1.0  # after a first failure, how long to wait for the other ranks' reports
# The ranks' own collectives time out after `timeout` and report it, which names the silent rank;
# the parent's watchdog waits this much longer, for a rank stuck outside any collective.
WATCHDOG_SLACK_S = 5.0
STARTUP_S = 120.0  # the least time the ranks get to start (import torch), whatever the timeout
LOOPBACK = "127.0.0.1"
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID")  # set by torchrun for each worker


class RankError(AttncliError):
    """A rank failed, died or hung (exit 3, as a device that is not there)."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, where: str, what: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(where, what, hint)
        if exit_code is not None:
            self.exit_code = exit_code


# ---------------------------------------------------------------------------------------------
# pure Python: what the command line asks for (no torch here)


def torchrun_env(env=None) -> dict | None:
    """{rank, world, local_rank} when this process is a worker torchrun started, else None."""
    env = os.environ if env is None else env
    if not all(v in env for v in TORCHRUN_VARS):
        return None
    return {"rank": int(env["RANK"]), "world": int(env["WORLD_SIZE"]), "local_rank": int(env["LOCAL_RANK"])}


def is_leader() -> bool:
    """Whether this process prints and writes files: always, except torchrun's ranks other than 0."""
    joined = torchrun_env()
    return joined is None or joined["rank"] == 0


def resolve_degree(option: str | None) -> int | None:
    """The TP degree of a bench/compare run: --tp, or under torchrun its world size (a --tp that
    differs from it is bad input). None: no tensor parallelism asked for (the unsharded path)."""
    from ..options import parse_positive_int

    joined = torchrun_env()
    tp = None if option is None else parse_positive_int(option, "--tp")
    if joined is None:
        return tp
    if tp is not None and tp != joined["world"]:
        raise InputError("--tp", f"{tp} differs from torchrun's world size {joined['world']}",
                         "under torchrun each process is one rank: drop --tp or match --nproc-per-node")  # fmt: skip
    return joined["world"]


def prepare(option: str | None, timeout: float, specs, device: str, **options) -> int | None:
    """The TP degree of a bench/compare run (None: unsharded), every refusal made before torch."""
    tp = resolve_degree(option)
    if tp is None:
        return None
    if not timeout > 0:
        raise InputError("--tp-timeout", f"{timeout} must be positive")
    check_run(specs, tp, device=device, **options)
    return tp


def sweep_degrees(option: str | None, timeout: float, measure: bool, specs, device: str) -> list:
    """The TP degrees a sweep covers ([None]: unsharded only), refused before torch when they
    cannot run: without --measure, under torchrun, or for a layout that cannot be cut."""
    from ..options import parse_int_list

    if option is None:
        return [None]
    if not measure:
        raise InputError("--tp", "a sweep measures sharded layers only with --measure",
                         "kv-memory --tp sizes the cache per GPU without measuring")  # fmt: skip
    if torchrun_env() is not None:
        raise InputError("--tp", "sweep starts its own ranks and cannot run under torchrun",
                         "run bench or compare under torchrun")  # fmt: skip
    if not timeout > 0:
        raise InputError("--tp-timeout", f"{timeout} must be positive")
    degrees = parse_int_list(option, "--tp")
    for tp in degrees:
        check_run(specs, tp, device=device)
    return degrees


class Groups:
    """A sweep's rank groups: one open at a time, replaced when the degree changes."""

    def __init__(self, settings, timeout: float, threads: int | None = None):
        self.settings, self.timeout, self.threads = settings, timeout, threads
        self.tp, self.group = None, None

    def measure_for(self, tp: int | None):
        """The one-layer measurement over `tp` ranks (None: unsharded, the caller's own)."""
        if tp is None:
            return None
        if tp != self.tp:
            self.close()
            self.group, self.tp = SpawnGroup(tp, self.settings, self.timeout, self.threads), tp
        return self.group.measure

    def close(self) -> None:
        if self.group is not None:
            self.group.close()
        self.tp, self.group = None, None


@contextlib.contextmanager
def group_or_none(tp: int | None, settings, timeout: float, threads: int | None = None):
    """open_group for a TP run, None otherwise (the command measures unsharded)."""
    if tp is None:
        yield None
        return
    with open_group(tp, settings, timeout, threads) as group:
        yield group


def check_run(specs, tp: int, *, weights=None, compile_=False, verify_flops=False, device: str = "auto") -> None:
    """Refuse what --tp cannot measure, before torch starts (exit 2): a layout that cannot be cut
    (kv-memory --tp's rule), and options the sharded run does not take."""
    for option, given in (("--weights", weights), ("--compile", compile_), ("--verify-flops", verify_flops)):
        if given:
            raise InputError("--tp", f"cannot be combined with {option}", "measure that without --tp")
    if device.strip().lower() == "mps":
        raise InputError("--tp", "no torch.distributed backend runs on MPS tensors", "use --device cpu or cuda")
    for spec in specs:
        check_shardable(spec, tp)


def check_shardable(spec, tp: int) -> None:
    """InputError (exit 2, saying why) when `spec` cannot be split over `tp` ranks: kv-memory
    --tp's rule (serving.group_of: T divides the query heads; T and n_kv_heads divide one
    another), for each layer kind of a stack."""
    from .. import serving
    from ..spec import HybridSpec

    for kind in spec.layers if isinstance(spec, HybridSpec) else (spec,):
        serving.group_of(kind, 1, tp)
        if tp > 1 and getattr(kind, "qk_norm", False) and kind.qk_norm_over == "proj":
            raise InputError("--tp", f"{kind.label} normalises q and k over the whole projection (qk_norm_over: proj), "
                             "which no rank's shard holds", "vLLM all-gathers the projection first; measure without --tp")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# one rank's context: the process group, its device, barriers


@dataclasses.dataclass
class RankContext:
    rank: int
    world: int
    device: object  # torch.device of this rank
    backend: str  # gloo | nccl
    launcher: str  # spawn | torchrun

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.backend == "nccl":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _backend_for(device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def _rank_device(base, index: int):
    """This rank's device: the CPU, or one GPU per rank (cuda:index)."""
    import torch

    if base.type != "cuda":
        return base
    if index >= torch.cuda.device_count():
        raise DeviceError("--tp", f"rank {index} needs cuda:{index}; {torch.cuda.device_count()} CUDA devices here",
                          "one GPU per rank: lower --tp")  # fmt: skip
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def _join(rank: int, world: int, base_device, timeout: float, launcher: str, store=None) -> RankContext:
    """Join the process group: through `store` (the spawn launcher's), or env:// (torchrun's)."""
    import datetime

    import torch.distributed as dist

    device = _rank_device(base_device, rank if launcher == "spawn" else int(os.environ["LOCAL_RANK"]))
    backend = _backend_for(device)
    extra = {"device_id": device} if backend == "nccl" else {}
    wait = datetime.timedelta(seconds=timeout)
    if store is not None:
        dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=wait, **extra)
    else:
        dist.init_process_group(backend, init_method="env://", timeout=wait, **extra)
    return RankContext(dist.get_rank(), dist.get_world_size(), device, backend, launcher)


# ---------------------------------------------------------------------------------------------
# the measurement every rank runs


def aligned_times(ctx: RankContext, fn, sync, min_run_time: float, warmup_time: float = 0.15,
                  min_runs: int = 5, max_runs: int = 100_000) -> list[float]:  # fmt: skip
    """Seconds of each call of fn on this rank, over rounds that start together (a barrier, then
    a device synchronisation). Every rank runs the same number of rounds: the count comes from
    the slowest rank's probe call, shared by an all-reduce (MAX)."""
    import torch
    import torch.distributed as dist

    for _ in range(3):
        fn()
    sync()
    ctx.barrier()
    t0 = time.perf_counter()
    fn()
    sync()
    probe = torch.tensor([max(time.perf_counter() - t0, 1e-6)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(probe, op=dist.ReduceOp.MAX)
    each = probe.item()
    for _ in range(min(1000, math.ceil(warmup_time / each))):
        fn()
    runs = max(min_runs, min(max_runs, math.ceil(min_run_time / each)))
    times = []
    for _ in range(runs):
        ctx.barrier()
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def measure_on_rank(ctx: RankContext, spec, preset, shape, settings, beat=lambda phase: None) -> dict:
    """One layer of `spec` doing `shape`, sharded over the group: every rank calls this with the
    same arguments; every rank returns rank 0's row (broadcast), so all of them agree."""
    import torch
    import torch.distributed as dist

    from ..variants import sharding
    from .backend import sdpa_context
    from .bench import inputs
    from .device import synchronizer
    from .timing import summarize

    run_settings = dataclasses.replace(settings, device=ctx.device)
    dtype = getattr(torch, settings.dtype)
    torch.manual_seed(settings.seed)
    full = registry.get(spec.family).build(spec).eval()  # float32, CPU, seeded: the same layer on every rank
    local = sharding.shard(full, spec, ctx.rank, ctx.world).to(device=ctx.device, dtype=dtype)
    x, x_ref = inputs(shape, spec.d_model, run_settings)  # seeded: the same input on every rank
    memory = memory_ref = None
    if getattr(full, "memory_len", 0):  # cross-attention: the whole encoder memory on every rank (as bench.measure_row)
        memory, memory_ref = inputs(type(shape)("prefill", full.memory_len, shape.batch), spec.d_model,
                                    dataclasses.replace(run_settings, seed=settings.seed + 1000))  # fmt: skip
        local.set_memory(memory)
    L, B = shape.seq_len, shape.batch
    sync = synchronizer(ctx.device)
    reduced = {}

    def reduce(y):  # row-parallel output projection: sum the partial outputs of every rank
        dist.all_reduce(y)
        reduced["bytes"] = y.nbytes  # (B, new tokens, d_model) in the run dtype
        return y

    beat("built")
    with torch.inference_mode(), sdpa_context(settings.backend):
        if shape.mode == "prefill":
            cache = None
            rewind = lambda: None  # noqa: E731
            run = lambda: reduce(local(x)[0])  # noqa: E731
            run_math = lambda: reduce(local(x, math=True)[0])  # noqa: E731
        else:
            cache = local.allocate_cache(B, L + 1)
            local.fill_cache(cache, x[:, :L])
            new = x[:, L:]
            rewind = lambda: local.fill_cache(cache, x[:, :L])  # noqa: E731  (a recurrent state advances per step)
            run = lambda: reduce(local.step(new, cache, L))  # noqa: E731
            run_math = lambda: reduce(local.step(new, cache, L, math=True))  # noqa: E731
        times = aligned_times(ctx, run, sync, settings.min_run_time)
        beat("timed")
        if cache is None:
            y_part, cache = local(x)  # the output, and the cache tensors a prefill really allocates
            y = reduce(y_part)
        else:
            rewind()
            y = run()
        rewind()
        y_math = run_math()
        zeros = torch.zeros_like(y)  # the all-reduce alone, on the output's shape and dtype (zeros stay zeros)
        ar_times = aligned_times(ctx, lambda: dist.all_reduce(zeros), sync, settings.min_run_time)
        sync()
        mine = {"times": times, "allreduce": ar_times, "kv_bytes": cache.nbytes, "allreduce_bytes": reduced["bytes"],
                "threads": torch.get_num_threads()}  # fmt: skip
        everyone = [None] * ctx.world
        dist.all_gather_object(everyone, mine)
        beat("gathered")
        row = None
        if ctx.rank == 0:
            row = _row(ctx, spec, preset, shape, settings, everyone, full, x, x_ref, memory, memory_ref,
                       y, y_math, summarize)  # fmt: skip
        beat("reference")
        box = [row]
        dist.broadcast_object_list(box, src=0)
    return box[0]


def _outputs(module, shape, x, math: bool):
    """The layer's output for `shape` on input x (decode: after filling the cache with the prefix)."""
    L = shape.seq_len
    if shape.mode == "prefill":
        return module(x, math=math)[0]
    cache = module.allocate_cache(shape.batch, L + 1)
    module.fill_cache(cache, x[:, :L])
    return module.step(x[:, L:], cache, L, math=math)


def _row(ctx, spec, preset, shape, settings, everyone, full, x, x_ref, memory, memory_ref, y, y_math, summarize):
    """Rank 0 turns every rank's figures into the row; the references run here."""
    import torch

    from .. import serving
    from ..rows import analytic_row, byte_columns, roofline_columns
    from .device import device_name
    from .error import GRADED_DTYPES, error_metrics, is_healthy

    ref = copy.deepcopy(full).to(device="cpu", dtype=torch.float64)  # the unsharded layer, float64 CPU
    whole = copy.deepcopy(full).to(device=ctx.device, dtype=getattr(torch, settings.dtype))  # unsharded, run dtype
    if memory is not None:
        ref.set_memory(memory_ref)
        whole.set_memory(memory)
    y_ref = _outputs(ref, shape, x_ref, math=True)
    y_whole = _outputs(whole, shape, x, math=False)
    err, err_math, err_whole = error_metrics(y, y_ref), error_metrics(y_math, y_ref), error_metrics(y, y_whole)
    timings = [summarize(r["times"]) for r in everyone]
    slowest = max(range(ctx.world), key=lambda r: timings[r].median_ms)
    t = timings[slowest]
    allreduce_ms = max(summarize(r["allreduce"]).median_ms for r in everyone)
    row = analytic_row(spec, preset, shape, layers=1, dtype=settings.dtype, device=str(settings.device))
    row.update(byte_columns(spec, shape, settings.dtype, layers=1))
    kv_heads = serving.group_of(spec, 1, ctx.world).kv_heads_per_gpu
    row.update(
        kv_cache_bytes_measured=sum(r["kv_bytes"] for r in everyone),
        latency_ms_median=t.median_ms, latency_ms_p25=t.p25_ms, latency_ms_p75=t.p75_ms, n_runs=t.n_runs,
        gflops_per_s=row["flops"] / (t.median_ms * 1e-3) / 1e9,
        err_max_abs=err and err["max_abs"], err_mean_abs=err and err["mean_abs"], err_rel_l2=err and err["rel_l2"],
        naive_err_max_abs=err_math and err_math["max_abs"], naive_err_rel_l2=err_math and err_math["rel_l2"],
        backend=settings.backend, device_name=device_name(ctx.device), torch_version=torch.__version__,
        threads=everyone[0]["threads"], seed=settings.seed, status="ok" if err and err_math else "nan",
        noisy=t.noisy, backend_used=None, compiled=False,
        healthy=is_healthy(err, err_math) if settings.dtype in GRADED_DTYPES else None,
        tp=ctx.world, kv_heads_per_gpu=kv_heads, tp_backend=ctx.backend, tp_launcher=ctx.launcher,
        kv_cache_bytes_per_rank=max(r["kv_bytes"] for r in everyone), allreduce_ms=allreduce_ms,
        allreduce_bytes=everyone[0]["allreduce_bytes"], tp_err_rel_l2=err_whole and err_whole["rel_l2"],
        tp_slowest_rank=slowest,
    )  # fmt: skip
    row.update(roofline_columns(row, None, None))  # one device's peak says nothing about T of them
    row["peak_source"] = None
    return row


# ---------------------------------------------------------------------------------------------
# joining torchrun's group: this process is one rank


class JoinedGroup:
    """Under torchrun: every process runs the same jobs; rows are rank 0's (broadcast)."""

    def __init__(self, world: int, settings, timeout: float):
        self.world, self.settings, self.timeout = world, settings, timeout
        joined = torchrun_env()
        try:
            self.ctx = _join(joined["rank"], world, settings.device, timeout, "torchrun")
        except AttncliError:
            raise
        except Exception as e:  # noqa: BLE001 - the rendezvous can fail in many ways
            raise RankError(f"rank {joined['rank']}", f"cannot join torchrun's process group: {_first_line(e)}") from None

    def measure(self, spec, preset, shape, settings) -> dict:
        try:
            return measure_on_rank(self.ctx, spec, preset, shape, settings)
        except AttncliError:
            raise
        except Exception as e:  # noqa: BLE001 - a peer's failure surfaces here as a backend error
            raise RankError(f"rank {self.ctx.rank}", _first_line(e)) from None

    def close(self) -> None:
        self.ctx.close()


# ---------------------------------------------------------------------------------------------
# starting T ranks here (torch.multiprocessing, spawn)


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the process that started it ends, so a killed attncli
    leaves no rank behind (prctl PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


def _rank_main(rank: int, world: int, port: int, settings, timeout: float, threads: int | None, inbox, outbox,
               parent: int) -> None:  # fmt: skip
    """A spawned rank: join through the parent's store, then run jobs until told to stop. `inbox`
    and `outbox` are this rank's own pipe ends (no lock shared with another rank, so a rank that
    is killed or stopped mid-message cannot block the others' reports)."""
    _die_with_parent()  # the fork server's child: it ends with attncli, and this rank with it
    try:
        os.kill(parent, 0)
    except ProcessLookupError:  # attncli ended before prctl took effect: nothing to do
        return
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # keep gloo's and NCCL's sockets on the loopback interface
    os.environ["NCCL_SOCKET_IFNAME"] = "lo"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends the ranks
    try:
        import datetime

        import torch
        import torch.distributed as dist

        if threads:
            torch.set_num_threads(threads)
        outbox.send(("started", None))  # torch imported: the parent waits for every rank to get here,
        if inbox.recv() is None:  # so the rendezvous below is not timed against a slow start
            return
        store = dist.TCPStore(LOOPBACK, port, world + 1, False, timeout=datetime.timedelta(seconds=timeout))
        ctx = _join(rank, world, settings.device, timeout, "spawn", store=store)
        outbox.send(("ready", None))
        while True:
            job = inbox.recv()
            if job is None:
                break
            row = measure_on_rank(ctx, *job, beat=lambda phase: outbox.send(("beat", phase)))
            outbox.send(("done", row if rank == 0 else None))
        ctx.close()
    except BaseException as e:  # noqa: BLE001 - every failure becomes one line for the parent
        code = e.exit_code if isinstance(e, AttncliError) else None
        text = e.message if isinstance(e, AttncliError) else _first_line(e)
        with contextlib.suppress(Exception):
            outbox.send(("error", (text, code)))
        os._exit(1)  # no clean-up that could block on a broken group


def _first_line(e: BaseException) -> str:
    """`Type: first line`, without the C++ source location torch's backends prefix (`[…/x.cc:78] `)."""
    import re

    text = re.sub(r"\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", str(e)).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first}"[:300] if first else type(e).__name__


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


# Modules the fork server imports once, so that each rank it forks starts without importing torch.
PRELOAD = ["torch", "torch.distributed", "attncli.measure.bench", "attncli.variants.sharding"]


def _context(mp):
    """torch.multiprocessing's fork server where the platform has one (Linux, macOS), else spawn.
    The fork server is a fresh interpreter that imports torch once and forks every rank from
    there: no rank inherits this process's threads or CUDA state (the reason for spawn), and T
    ranks do not each pay torch's import. It ends with this process."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class SpawnGroup:
    """T rank processes started here; `measure` sends each the same job and returns rank 0's row.

    `on_message(group, kind, rank, payload)` sees every message the ranks send (tests use it to
    stop or kill a rank at a known point)."""

    def __init__(self, world: int, settings, timeout: float = DEFAULT_TIMEOUT_S, threads: int | None = None,
                 on_message=None):  # fmt: skip
        import datetime
        import socket

        import torch.distributed as dist
        import torch.multiprocessing as mp

        self.world, self.timeout, self.on_message = world, timeout, on_message
        self.procs: list = []
        self._pids: list[int] = []
        if settings.device.type == "cuda":
            import torch

            if torch.cuda.device_count() < world:
                raise DeviceError("--tp", f"{world} ranks need {world} CUDA devices (one per rank); "
                                  f"{torch.cuda.device_count()} here", "lower --tp, or run under torchrun")  # fmt: skip
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((LOOPBACK, 0))  # a free port, loopback only
        listener.listen(128)
        port = listener.getsockname()[1]
        self.store = dist.TCPStore(LOOPBACK, port, world + 1, True, timeout=datetime.timedelta(seconds=timeout),
                                   wait_for_workers=False, master_listen_fd=listener.detach())  # fmt: skip
        if threads is None and settings.device.type == "cpu":
            threads = max(1, (os.cpu_count() or 1) // world)  # the cores shared out, as torchrun's OMP_NUM_THREADS
        ctx = _context(mp)
        self.inboxes, self.outboxes, ends = [], [], []
        try:
            for rank in range(world):
                from_rank, to_parent = ctx.Pipe(duplex=False)
                from_parent, to_rank = ctx.Pipe(duplex=False)
                self.inboxes.append(to_rank)
                self.outboxes.append(from_rank)
                ends += [to_parent, from_parent]
                p = ctx.Process(target=_rank_main, name=f"attncli-tp-rank{rank}", daemon=True,
                                args=(rank, world, port, settings, timeout, threads, from_parent, to_parent,
                                      os.getpid()))  # fmt: skip
                p.start()
                self.procs.append(p)
                self._pids.append(p.pid)
            for end in ends:  # the ranks hold these now: a rank's end of the pipe closes when it dies
                end.close()
            self._wait("started", max(timeout, STARTUP_S))  # importing torch T times on a busy machine is slow
            for inbox in self.inboxes:
                inbox.send("join")
            self._wait("ready")
        except BaseException:
            self.close(force=True)
            raise

    @property
    def pids(self) -> list[int]:
        return list(self._pids)

    def measure(self, spec, preset, shape, settings) -> dict:
        try:
            for inbox in self.inboxes:
                with contextlib.suppress(OSError):  # a rank that died: _wait names it
                    inbox.send((spec, preset, shape, settings))
            return self._wait("done")[0]
        except BaseException:
            self.close(force=True)
            raise

    def _receive(self, timeout: float):
        """(kind, rank, payload) of each message the ranks sent within `timeout` seconds; a rank
        whose pipe closed gives ("closed", rank, None) once."""
        from multiprocessing.connection import wait

        open_ends = {conn: r for r, conn in enumerate(self.outboxes) if conn is not None}
        for conn in wait(list(open_ends), timeout=timeout):
            r = open_ends[conn]
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                self.outboxes[r] = None
                self.procs[r].join(timeout=1.0)  # its exit code, for the message
                yield "closed", r, None
                continue
            yield kind, r, payload

    def _wait(self, kind: str, silence: float | None = None) -> dict:
        """Every rank's `kind` message (payload by rank), or a RankError naming the rank at fault
        when a rank fails or every rank is silent for `silence` seconds (default: the timeout)."""
        silence = self.timeout if silence is None else silence
        got: dict = {}
        errors: dict = {}
        last = time.monotonic()
        first_failure = None
        while len(got) < self.world:
            for msg_kind, rank, payload in self._receive(0.1):
                last = time.monotonic()
                if self.on_message is not None:
                    self.on_message(self, msg_kind, rank, payload)
                if msg_kind == "error":
                    errors[rank] = payload
                elif msg_kind == kind:
                    got[rank] = payload
            now = time.monotonic()
            dead = [r for r, p in enumerate(self.procs) if p.exitcode is not None and r not in got]
            if (errors or dead) and first_failure is None:
                first_failure = now
            if first_failure is not None and (now - first_failure >= GRACE_S or len(set(errors) | set(dead)) >= self.world):
                self._fail(errors, got, silent_for=None)
            if first_failure is None and now - last >= silence + WATCHDOG_SLACK_S:
                self._fail(errors, got, silent_for=now - last)
        return got

    def _fail(self, errors: dict, got: dict, silent_for: float | None):
        """End every rank, then raise one line naming the rank at fault: one killed by a signal or
        that exited without a word, else one that went silent while the others reported errors
        (or timed out), else the first error reported."""
        for msg_kind, rank, payload in self._receive(0.2):  # what is still in the pipes
            if msg_kind == "error":
                errors[rank] = payload
        dead = {r: p.exitcode for r, p in enumerate(self.procs) if p.exitcode is not None and r not in got}
        self.close(force=True)
        where = f"--tp {self.world}"
        died = sorted((r for r in dead if r not in errors), key=lambda r: (dead[r] >= 0, r))  # signals first
        if died:
            r = died[0]
            raise RankError(where, f"rank {r} (pid {self._pids[r]}) {_exit_text(dead[r])}")
        silent = sorted(r for r in range(self.world) if r not in errors and r not in got)
        if silent and (errors or silent_for is not None):
            names = ", ".join(map(str, silent))
            waited = f"{silent_for:.0f} s" if silent_for is not None else f"the {self.timeout:g} s timeout"
            also = f" ({'; '.join(f'rank {r}: {errors[r][0]}' for r in sorted(errors))})" if errors else ""
            raise RankError(where, f"rank{'s' if len(silent) > 1 else ''} {names} hung: no progress for {waited}{also}",
                            "raise --tp-timeout if the work is that slow")  # fmt: skip
        r = sorted(errors)[0]
        text, code = errors[r]
        raise RankError(where, f"rank {r}: {text}", exit_code=code)

    def close(self, force: bool = False) -> None:
        """Stop the ranks (asked nicely unless `force`), and make sure none is left."""
        if not force:
            for inbox in self.inboxes:
                with contextlib.suppress(OSError):
                    inbox.send(None)
            deadline = time.monotonic() + 10.0
            for p in self.procs:
                p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.exitcode is None:
                p.kill()  # SIGKILL: a rank blocked in a collective (or stopped) does not answer SIGTERM
        for p in self.procs:
            p.join(timeout=5.0)
        for conn in (*self.inboxes, *self.outboxes):
            if conn is not None:
                conn.close()
        self.inboxes, self.outboxes = [], []
        self.procs = [p for p in self.procs if p.exitcode is None]


# ---------------------------------------------------------------------------------------------
# what the commands call


@contextlib.contextmanager
def open_group(world: int, settings, timeout: float = DEFAULT_TIMEOUT_S, threads: int | None = None):
    """The ranks of a TP run: torchrun's group when launched under it, else T spawned here."""
    group = JoinedGroup(world, settings, timeout) if torchrun_env() is not None else SpawnGroup(
        world, settings, timeout, threads)  # fmt: skip
    try:
        yield group
    finally:
        group.close()
