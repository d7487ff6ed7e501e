"""PBS Pro / OpenPBS and TORQUE command-line emulator: ``qsub``, ``qstat``, ``qdel``.

Jobs run as local processes through :class:`~pycrew_emulators.batch.BatchEngine`; the
shims in ``emulator.bin_directory`` speak the real commands' options, outputs and exit
codes. Flavour ``"pbspro"`` follows PBS Pro / OpenPBS (``qsub -J``, ``qstat -f -F json``);
flavour ``"torque"`` follows TORQUE where it differs (``qsub -t``, ``PBS_ARRAYID``,
``qstat -f`` text with ``job_state = C``).

Sources used (reference and real output, read through the project's search tool):

* OpenPBS source: ``src/cmds/qdel.c`` (``qdel: <error text> <job id>`` on stderr, exit
  code = PBS error number & 0xff), ``src/include/pbs_error.h`` (PBSE_UNKJOBID 15001 ->
  153, PBSE_HISTJOBID 15139 -> 35, PBSE_SYSTEM 15010 -> 162, PBSE_BADSTATE 15016 ->
  168), ``src/lib/Libjson/cJSON/pbs_cjson.c`` (``qstat -F json`` values are parsed as
  JSON when they parse, else strings; printed by ``cJSON_Print``, tab-indented).
* PBS Pro design page PP-483 (``qstat -f -F json``: prolog ``timestamp``,
  ``pbs_version``, ``pbs_server``, then ``Jobs``) and a real OpenPBS job record quoted in
  a public Ruby client (key names and order, ``Exit_status`` a number,
  ``Variable_List``/``Resource_List`` objects, ``array_state_count``,
  ``array_indices_submitted``/``remaining``, ``exec_host`` ``host/0``, comment texts).
* equinor/ert ``openpbs_driver.py`` (production driver for real OpenPBS): qsub exit
  codes 162 (connection refused), 171 (invalid credential), 183 (premature end of
  message) are retried; qdel 35 = job has finished; qstat 153 = unknown job id with the
  other jobs still printed; ``qstat -f -F json`` may have no ``Jobs`` key; states
  ``B E F H M Q R S T U W X``; the script on stdin (``qsub -``).
* Real messages quoted in public code and docs: ``qstat: Unknown Job Id 10000.srv``;
  ``qstat: 1008.srv Job has finished, use -x or -H to obtain historical job
  information``; ``qsub: cannot connect to server aqua (errno=15010)``; ``pbs_iff:
  cannot connect to host``; walltime kills ``=>> PBS: job killed: walltime 152 exceeded
  limit 120`` in the job's stderr, with ``Exit_status = 271`` on TORQUE and older PBS,
  ``-29`` (``JOB_EXEC_KILL_WALLTIME``, OpenPBS ``src/include/job.h``) on PBS Pro /
  OpenPBS (MetaCentrum's user docs list -29 walltime, -27 mem, -25 ncpus; Open OnDemand's
  PBS client test expects it after ``walltime: 1``); exit status >= 256 = killed by
  signal (status - 256).
* TORQUE source ``src/cmds/qdel.c`` and ``src/include/pbs_error_db.h`` (TORQUE's own
  numbering: PBSE_UNKJOBID 15001 "Unknown Job Id Error" -> 153, PBSE_BADSTATE 15018
  -> 170); TORQUE docs (job arrays ``qsub -t 0-4``, ``1098[].hostname``, ``qstat -t``
  expands, ``PBS_ARRAYID``, ``PBS_JOBNAME`` differs per element; exit status page with a
  ``qstat -f`` block: ``    key = value`` lines, ``Resource_List.ncpus = 2``,
  ``exit_status = -1``, wrapped ``Variable_List``); real TORQUE messages ``qdel: Request
  invalid for state of job MSG=invalid state for job - COMPLETE 1037416.srv``, ``Unable
  to communicate with wadm1(10.188.82.10)`` / ``Cannot connect to specified server host
  'wadm1'.`` / ``qstat: cannot connect to server wadm1 (errno=111) Connection refused``.

Every behaviour not confirmed by those is marked ``# GUESS:`` below and listed in the
package README.
"""

from __future__ import annotations

import getopt
import getpass
import json
import re
import shlex
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pycrew_emulators.batch import (
    SYSTEM_PATH,
    BatchEmulator,
    CommandReply,
    CommandRequest,
    Element,
    iter_directives,
    spool_script,
)

__all__ = ["PbsEmulator"]

Flavour = Literal["pbspro", "torque"]

_QSUB_OPTS: dict[str, str] = {
    "pbspro": "a:A:c:C:e:fGhIj:J:k:l:m:M:N:o:p:P:q:r:R:S:u:v:VW:Xz",
    "torque": "a:A:b:c:C:d:D:e:fF:hIj:k:l:m:M:n:N:o:p:P:q:r:S:t:T:u:v:Vw:W:Xxz",
}
_QSTAT_OPTS: dict[str, str] = {
    "pbspro": "1aBD:EfF:GHiJMnprsStTu:wxW:",
    "torque": "1aBeEfGiJMnrRstu:W:x",
}
_QDEL_OPTS: dict[str, str] = {"pbspro": "W:x", "torque": "m:pW:t:c"}

_PBSPRO_RESOURCES = frozenset(
    [
        "select",
        "place",
        "walltime",
        "ncpus",
        "mem",
        "vmem",
        "nodes",
        "host",
        "arch",
        "cput",
        "file",
        "nice",
        "pcput",
        "pmem",
        "pvmem",
        "software",
        "mpiprocs",
        "ompthreads",
        "ngpus",
        "vnode",
        "soft_walltime",
        "min_walltime",
        "max_walltime",
        "preempt_targets",
    ]
)
_TORQUE_RESOURCES = frozenset(
    [
        "nodes",
        "walltime",
        "mem",
        "pmem",
        "vmem",
        "pvmem",
        "ncpus",
        "procs",
        "cput",
        "pcput",
        "file",
        "host",
        "gres",
        "feature",
        "naccesspolicy",
        "epilogue",
        "prologue",
        "other",
        "software",
        "arch",
        "opsys",
    ]
)
_WALLTIME = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d+)?)$")
_SIZE = re.compile(r"^\d+(?:[kmgtp]?[bw])?$", re.IGNORECASE)
_JOB_ID = re.compile(r"^(\d+)(?:\[(\d*)\])?(?:\.([^@]+))?(?:@.*)?$")

# PBS error numbers (the commands exit with number & 0xff).
_UNKJOBID = 153
_HISTJOBID = 35  # pbspro PBSE_HISTJOBID 15139
_NOHISTARRAYSUBJOB = 55  # pbspro PBSE_NOHISTARRAYSUBJOB 15159
_BADSTATE = {"pbspro": 168, "torque": 170}


class _UsageError(Exception):
    """A command-line error: message for stderr and the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Submission:
    """One ``qsub``: a plain job or an array (whose elements are engine elements)."""

    seq: int
    job_id: str
    name: str
    queue: str
    owner: str
    indices: list[int] | None
    elements: list[Element]
    resources: dict[str, str]
    variables: dict[str, str]
    output_path: str
    error_path: str
    join: str
    account: str
    submit_args: str
    submit_host: str
    submit_time: float
    extra: dict[str, str] = field(default_factory=dict)


class PbsEmulator(BatchEmulator):
    """PBS Pro/OpenPBS (``flavour="pbspro"``) or TORQUE (``flavour="torque"``) command-line emulator.

    Args:
        flavour: ``"pbspro"`` or ``"torque"``.
        server_name: Server part of job ids (``100.pbs-head.emu.local``).
        slots: At most this many job processes run at once.
        kill_grace_seconds: Delay between SIGTERM and SIGKILL on ``qdel`` and walltime.
        first_job_id: Sequence number of the first job.

    Attributes:
        queues: Queue names ``qsub -q`` accepts (add to it); the default queue is
            ``workq`` (PBS Pro) or ``batch`` (TORQUE).
        max_array_size: The server's array limit (PBS Pro ``max_array_size``, default
            10000; TORQUE ``max_job_array_size``, unset by default), shown by
            ``qstat -B -f`` and enforced by ``qsub``.
        ncpus_available: The CPUs of the emulated cluster's biggest node (``None``: no
            limit). A job asking for more is accepted and stays queued for good; PBS
            Pro's scheduler says so in its ``comment`` (``Can Never Run: Insufficient
            amount of resource: ncpus (R: 64 A: 8 T: 8)``), TORQUE's qstat says nothing.
    """

    commands = ("qsub", "qstat", "qdel")

    def __init__(
        self,
        flavour: Flavour = "pbspro",
        *,
        server_name: str = "pbs-head.emu.local",
        slots: int = 16,
        kill_grace_seconds: float = 2.0,
        first_job_id: int = 100,
    ) -> None:
        if flavour not in ("pbspro", "torque"):
            raise ValueError(f"flavour must be 'pbspro' or 'torque', got {flavour!r}")
        self.flavour = flavour
        self.server_name = server_name
        self.default_queue = "workq" if flavour == "pbspro" else "batch"
        self.queues: set[str] = {self.default_queue}
        self.max_array_size: int | None = 10000 if flavour == "pbspro" else None
        self.ncpus_available: int | None = None
        self._subs: dict[int, _Submission] = {}
        super().__init__(slots=slots, kill_grace_seconds=kill_grace_seconds, first_job_id=first_job_id)

    # --- BatchEmulator hooks ------------------------------------------------------------

    def _handle(self, request: CommandRequest) -> CommandReply:
        try:
            if request.command == "qsub":
                return self._qsub(request)
            if request.command == "qstat":
                return self._qstat(request)
            return self._qdel(request)
        except _UsageError as exc:
            return CommandReply(stderr=f"{exc}\n", returncode=exc.code)

    def _transient(self, command: str, argv: Sequence[str] = ()) -> CommandReply:
        if self.flavour == "pbspro":
            # PBSE_SYSTEM 15010 -> exit 162, as ERT retries on it. GUESS: the first line
            # (pbs_iff's) comes with the connect error on every command.
            return CommandReply(
                stderr=(
                    "pbs_iff: cannot connect to host\n"
                    f"{command}: cannot connect to server {self.server_name} (errno=15010)\n"
                ),
                returncode=162,
            )
        # GUESS: TORQUE's exit code here is errno (111, ECONNREFUSED); the text is real.
        return CommandReply(
            stderr=(
                f"Unable to communicate with {self.server_name}(127.0.0.1)\n"
                f"Cannot connect to specified server host '{self.server_name}'.\n"
                f"{command}: cannot connect to server {self.server_name} (errno=111) Connection refused\n"
            ),
            returncode=111,
        )

    def _native_state(self, element: Element) -> str:
        if element.state == "queued":
            return "Q"
        if element.state == "running":
            return "R"
        if element.state == "exiting":
            return "E"
        if self.flavour == "torque":
            return "C"
        return "X" if element.index is not None else "F"

    def _exit_status(self, element: Element) -> int | None:
        if element.state != "finished":
            return None
        if element.start_error:
            return -1  # JOB_EXEC_FAIL1
        if element.returncode is None:
            return None  # deleted before it ran: no Exit_status. GUESS
        if element.walltime_exceeded and self.flavour == "pbspro":
            return -29  # JOB_EXEC_KILL_WALLTIME (OpenPBS job.h), whichever signal ended it
        sig = element.signal_number
        return 256 + sig if sig is not None else element.returncode

    def _on_walltime(self, element: Element) -> None:
        limit = int(element.walltime or 0)
        used = int(time.time() - (element.start_time or time.time()))
        target = element.stdout_path if element.merge_stderr else element.stderr_path
        if target is not None:
            try:
                with target.open("a") as handle:
                    handle.write(f"=>> PBS: job killed: walltime {used} exceeded limit {limit}\n")
            except OSError:
                pass  # the output path is unusable: the job's output is discarded anyway

    # --- qsub -----------------------------------------------------------------------------

    def _qsub(self, request: CommandRequest) -> CommandReply:
        flavour = self.flavour
        try:
            opts, operands = getopt.getopt(list(request.argv), _QSUB_OPTS[flavour])
        except getopt.GetoptError as exc:
            raise _UsageError(f"qsub: {exc}\n{self._qsub_usage()}") from None
        consumed = len(request.argv) - len(operands)
        exec_mode = consumed > 0 and request.argv[consumed - 1] == "--" and flavour == "pbspro"
        prefix = "#PBS"
        for key, value in opts:
            if key == "-C":
                prefix = value
        if exec_mode:
            if not operands:
                raise _UsageError(f"qsub: no executable after --\n{self._qsub_usage()}")
            script = "#!/bin/sh\nexec " + shlex.join(operands) + "\n"
            default_name = Path(operands[0]).name
        elif not operands or operands == ["-"]:
            script = request.read_stdin()
            default_name = "STDIN"
        elif len(operands) == 1:
            path = request.cwd / operands[0]
            try:
                script = path.read_text()
            except OSError as exc:
                # GUESS: message wording; PBSE_BADSCRIPT is "(qsub) cannot access script file".
                raise _UsageError(f"qsub: script file:: {exc.strerror}", 1) from None
            default_name = path.name
        else:
            raise _UsageError(f"qsub: too many arguments: {' '.join(operands[1:])}\n{self._qsub_usage()}")
        directive_opts: list[tuple[str, str]] = []
        if not exec_mode:
            for line in iter_directives(script, prefix):
                try:
                    found, _ = getopt.getopt(shlex.split(line), _QSUB_OPTS[flavour])
                except (getopt.GetoptError, ValueError) as exc:
                    raise _UsageError(f"qsub: directive error: {line} ({exc})", 2) from None
                directive_opts.extend(found)
        return self._submit(request, directive_opts + opts, script, default_name)

    def _qsub_usage(self) -> str:
        if self.flavour == "pbspro":
            return "usage: qsub [-J X-Y[:Z][%max]] [-N name] [-q queue] [-l resource_list] [-o path] [-e path] [-j oe] [-V] [-v variable_list] [script | -- executable [args]]"
        return "usage: qsub [-t array_request] [-N name] [-q queue] [-l resource_list] [-o path] [-e path] [-j oe] [-V] [-v variable_list] [-d path] [script]"

    def _submit(
        self, request: CommandRequest, opts: Sequence[tuple[str, str]], script: str, default_name: str
    ) -> CommandReply:
        flavour = self.flavour
        env = request.env
        name = default_name
        queue = self.default_queue
        resources: dict[str, str] = {}
        variables: dict[str, str] = {}
        export_all = False
        join = "n"
        keep = "n"
        out_opt = err_opt = None
        account = ""
        array_spec: str | None = None
        workdir: Path | None = None
        extra: dict[str, str] = {}
        for key, value in opts:
            if key == "-N":
                name = value
            elif key == "-q":
                queue = value.split("@", 1)[0] or self.default_queue
            elif key == "-l":
                resources.update(self._parse_resources(value))
            elif key == "-v":
                variables.update(_parse_variable_list(value, env))
            elif key == "-V":
                export_all = True
            elif key == "-j":
                if value not in ("oe", "eo", "n"):
                    raise _UsageError(f"qsub: illegal -j value {value!r} (use oe, eo or n)")
                join = value
            elif key == "-o":
                out_opt = value
            elif key == "-e":
                err_opt = value
            elif key == "-A":
                account = value
            elif (key == "-J" and flavour == "pbspro") or (key == "-t" and flavour == "torque"):
                array_spec = value
            elif key == "-d" and flavour == "torque":
                workdir = request.cwd / value
            elif key == "-h":
                raise _UsageError("qsub: -h (user hold) is not supported by the emulator: it has no qrls", 2)
            elif key == "-r":
                extra["Rerunable"] = "True" if value == "y" else "False"
            elif key == "-k":
                if not re.fullmatch(r"[oedn]+", value) or ("n" in value and value != "n"):
                    raise _UsageError(f"qsub: illegal -k value {value!r} (use n, or o, e, d combined)")
                if "d" in value and flavour == "torque":
                    raise _UsageError(f"qsub: illegal -k value {value!r} (TORQUE has no d)")
                keep = value
            elif key == "-W":
                extra.setdefault("W", "")
                extra["W"] += ("," if extra["W"] else "") + value
        if not name or any(c.isspace() for c in name) or len(name) > 236:
            # GUESS: PBS rejects names with white space or over 236 characters this way.
            raise _UsageError(f"qsub: illegal -N value {name!r}")
        if queue not in self.queues:
            if flavour == "pbspro":
                raise _UsageError("qsub: Unknown queue", 170)  # PBSE_UNKQUE 15018. GUESS: wording
            raise _UsageError(f"qsub: submit error (Unknown queue MSG=cannot locate queue {queue})", 180)  # GUESS
        indices: list[int] | None = None
        limit: int | None = None
        if array_spec is not None:
            indices, limit = _parse_array_spec(array_spec, flavour)
            if self.max_array_size is not None and len(indices) > self.max_array_size:
                # GUESS: wording and code (PBSE_MaxArraySize 15107 -> 3).
                raise _UsageError("qsub: Array job exceeds server or queue size limit", 3)
        walltime = _walltime_seconds(resources["walltime"]) if "walltime" in resources else None

        seq = self.next_seq()
        server = self.server_name
        array_id = f"{seq}[].{server}" if indices is not None else None
        job_id = array_id or f"{seq}.{server}"
        user = env.get("USER") or env.get("LOGNAME") or getpass.getuser()
        home = env.get("HOME") or str(Path("~").expanduser())
        submit_host = self.hostname
        script_path = spool_script(self.spool, f"{seq}.SC", script)
        now = time.time()

        o_vars = {f"PBS_O_{k}": env[k] for k in ("HOME", "LANG", "LOGNAME", "PATH", "MAIL", "SHELL", "TZ") if k in env}
        o_vars["PBS_O_WORKDIR"] = str(request.cwd)
        o_vars["PBS_O_HOST"] = submit_host
        o_vars["PBS_O_SYSTEM"] = "Linux"
        o_vars["PBS_O_QUEUE"] = queue
        if flavour == "torque":
            o_vars["PBS_O_SERVER"] = server
            if workdir is not None:
                o_vars["PBS_O_INITDIR"] = str(workdir)
        variable_list = {**o_vars, **(dict(env) if export_all else {}), **variables}

        ncpus = _ncpus(resources, flavour)
        elements: list[Element] = []
        for index in indices if indices is not None else [None]:
            el_id = f"{seq}[{index}].{server}" if index is not None else job_id
            el_name = f"{name}-{index}" if (index is not None and flavour == "torque") else name
            out_path, err_path = self._output_paths(request.cwd, name, seq, index, out_opt, err_opt)
            merge = join in ("oe", "eo")
            streams = ["e" if join == "eo" else "o"] if merge else ["o", "e"]
            finals = {"o": out_path, "e": err_path}
            written: dict[str, Path] = {}
            shown: dict[str, Path] = {}
            deliveries: list[tuple[Path, Path, str]] = []
            for stream in streams:
                if stream in keep and "d" in keep:  # PBS Pro direct_write: in place while it runs
                    written[stream] = shown[stream] = finals[stream]
                elif stream in keep:  # kept on the execution host, in the job's home directory
                    kept_suffix = "" if index is None else (f"-{index}" if flavour == "torque" else f".{index}")
                    written[stream] = shown[stream] = Path(home) / f"{name}.{stream}{seq}{kept_suffix}"
                else:  # spooled, copied to its destination when the job ends
                    written[stream] = self.spool / f"{el_id}.{'OU' if stream == 'o' else 'ER'}"
                    shown[stream] = finals[stream]
                    deliveries.append((written[stream], finals[stream], "w"))
            first = streams[0]
            never_run = ""
            if self.ncpus_available is not None and ncpus > self.ncpus_available:
                available = self.ncpus_available
                # GUESS: the scheduler sets this at its next cycle; here it is there at once.
                never_run = f"Can Never Run: Insufficient amount of resource: ncpus (R: {ncpus} A: {available} T: {available})"
            tmpdir = self.spool / "tmp" / el_id
            tmpdir.mkdir(parents=True, exist_ok=True)
            nodefile = self.spool / "aux" / el_id
            nodefile.parent.mkdir(exist_ok=True)
            nodefile.write_text(f"{self.hostname}\n" * ncpus)
            job_env = {
                "HOME": home,
                "USER": user,
                "LOGNAME": user,
                "SHELL": "/bin/bash",
                "PATH": SYSTEM_PATH,
                "TMPDIR": str(tmpdir),
                **variable_list,
                "PBS_JOBID": el_id,
                "PBS_JOBNAME": el_name,
                "PBS_QUEUE": queue,
                "PBS_ENVIRONMENT": "PBS_BATCH",
                "PBS_NODEFILE": str(nodefile),
                "PBS_NODENUM": "0",
                "PBS_TASKNUM": "1",
                "PBS_MOMPORT": "15003",
            }
            if flavour == "pbspro":
                job_env.update(
                    {"ENVIRONMENT": "BATCH", "PBS_JOBDIR": home, "NCPUS": str(ncpus), "OMP_NUM_THREADS": str(ncpus)}
                )
                if index is not None:
                    job_env["PBS_ARRAY_INDEX"] = str(index)
                    job_env["PBS_ARRAY_ID"] = array_id or ""
            else:
                job_env.update(
                    {
                        "PBS_SERVER": server,
                        "PBS_VERSION": "TORQUE-6.1.3",
                        "PBS_NUM_NODES": "1",
                        "PBS_NUM_PPN": str(ncpus),
                        "PBS_NP": str(ncpus),
                        "PBS_VNODENUM": "0",
                        "PBS_O_INITDIR": str(workdir or home),
                    }
                )
                if walltime is not None:
                    job_env["PBS_WALLTIME"] = str(int(walltime))
                if index is not None:
                    job_env["PBS_ARRAYID"] = str(index)
            elements.append(
                Element(
                    seq=seq,
                    index=index,
                    job_id=el_id,
                    array_id=array_id,
                    name=el_name,
                    queue=queue,
                    script_path=script_path,
                    env=job_env,
                    cwd=workdir if workdir is not None else Path(home),
                    stdout_path=written[first],
                    stderr_path=None if merge else written["e"],
                    stdout_final=shown[first],
                    stderr_final=None if merge else shown["e"],
                    deliveries=deliveries,
                    merge_stderr=merge,
                    attrs={"Output_Path": out_path, "Error_Path": err_path},
                    walltime=walltime,
                    group=array_id,
                    group_limit=limit,
                    submit_argv=tuple(request.argv),
                    kill_signals=(signal.SIGTERM,),
                    walltime_signals=(signal.SIGTERM,),
                    submit_time=now,
                    gate=never if never_run else None,
                )
            )
            if never_run:
                elements[-1].attrs["comment"] = never_run
        out_display, err_display = self._output_paths(
            request.cwd, name, seq, None, out_opt, err_opt, parent=indices is not None
        )
        sub = _Submission(
            seq=seq,
            job_id=job_id,
            name=name,
            queue=queue,
            owner=f"{user}@{submit_host}",
            indices=indices,
            elements=elements,
            resources=_resource_list(resources, flavour),
            variables=variable_list,
            output_path=f"{submit_host}:{out_display}",
            error_path=f"{submit_host}:{err_display}",
            join=join,
            account=account,
            submit_args=" ".join(request.argv),
            submit_host=submit_host,
            submit_time=now,
            extra=extra,
        )
        self._subs[seq] = sub
        self.engine.add(elements)
        return CommandReply(stdout=f"{job_id}\n")

    def _parse_resources(self, value: str) -> dict[str, str]:
        known = _PBSPRO_RESOURCES if self.flavour == "pbspro" else _TORQUE_RESOURCES
        found: dict[str, str] = {}
        for item in _split_top(value):
            if not item:
                continue
            key, sep, val = item.partition("=")
            if not sep or not val:
                raise _UsageError(f"qsub: illegal -l value {value!r}")
            if key not in known:
                if self.flavour == "pbspro":
                    raise _UsageError(f"qsub: Unknown resource Resource_List.{key}", 187)  # GUESS: wording
                raise _UsageError(f"qsub: submit error (Unknown resource type  Resource_List.{key})", 189)  # GUESS
            if key == "walltime" and not _WALLTIME.match(val):
                raise _UsageError(f"qsub: Illegal attribute or resource value Resource_List.walltime ({val!r})", 166)
            if key in ("mem", "vmem", "pmem") and not _SIZE.match(val):
                raise _UsageError(f"qsub: Illegal attribute or resource value Resource_List.{key} ({val!r})", 166)
            if key == "select":
                for chunk in val.split("+"):
                    for part in chunk.split(":")[1:]:
                        rkey, _, rval = part.partition("=")
                        if rkey in ("mem", "vmem") and not _SIZE.match(rval):
                            raise _UsageError(
                                f"qsub: Illegal attribute or resource value Resource_List.select ({val!r})", 166
                            )
            found[key] = val
        return found

    def _output_paths(
        self,
        cwd: Path,
        name: str,
        seq: int,
        index: int | None,
        out_opt: str | None,
        err_opt: str | None,
        parent: bool = False,
    ) -> tuple[Path, Path]:
        torque = self.flavour == "torque"
        if parent and not torque:
            suffix = ".^array_index^"
        elif parent:
            suffix = ""
        elif index is not None:
            suffix = f"-{index}" if torque else f".{index}"
        else:
            suffix = ""

        def resolve(opt: str | None, kind: str) -> Path:
            default = f"{name}.{kind}{seq}{suffix}"
            if opt is None:
                return cwd / default
            raw = opt.split(":", 1)[1] if re.match(r"^[\w.-]+:/", opt) else opt
            path = cwd / raw
            if path.is_dir():
                return path / default
            text = str(path)
            if index is not None and not torque:
                text = text.replace("^array_index^", str(index))
            elif index is not None and torque:
                text += f"-{index}"  # GUESS: TORQUE's per-element suffix for an explicit -o/-e file
            return Path(text)

        return resolve(out_opt, "o"), resolve(err_opt, "e")

    # --- qstat ----------------------------------------------------------------------------

    def _qstat(self, request: CommandRequest) -> CommandReply:
        try:
            opts, operands = getopt.getopt(list(request.argv), _QSTAT_OPTS[self.flavour])
        except getopt.GetoptError as exc:
            raise _UsageError(
                f"qstat: {exc}\nusage: qstat [-f [-F json]] [-t] [-x] [-u user] [job_identifier ...]"
            ) from None
        flags = {k for k, _ in opts}
        full = "-f" in flags
        fmt = next((v for k, v in opts if k == "-F"), None)
        if fmt is not None and (fmt.lower() != "json" or not full):
            raise _UsageError("qstat: -F json is only valid with -f (dsv is not emulated)")
        if "-B" in flags:
            return self._qstat_server(full, fmt is not None, operands)
        history = "-x" in flags or "-H" in flags or self.flavour == "torque"
        expand = "-t" in flags or "-J" in flags
        users = {v for k, v in opts if k == "-u"}
        errors: list[str] = []
        rc = 0
        rows: list[tuple[str, _Submission, Element | None]] = []
        if operands:
            for operand in operands:
                found = self._lookup(operand)
                if found is None:
                    if operand in self.queues:
                        rows.extend(self._all_rows(history, expand, users, queue=operand))
                        continue
                    errors.append(self._unknown("qstat", operand))
                    rc = _UNKJOBID
                    continue
                sub, element = found
                finished = element.state == "finished" if element is not None else _sub_finished(sub)
                if finished and not history:
                    errors.append(
                        f"qstat: {self._canonical(sub, element)} Job has finished, use -x or -H to obtain historical job information"
                    )
                    rc = _HISTJOBID
                    continue
                rows.append((self._canonical(sub, element), sub, element))
                if element is None and sub.indices is not None and expand:
                    rows.extend((e.job_id, sub, e) for e in sub.elements)
        else:
            rows = self._all_rows(history, expand, users)
        if fmt is not None:
            out = self._render_json(rows)
        elif full:
            out = "".join(
                self._render_text(job_id, sub, el, wrap="-1" not in flags and "-w" not in flags)
                for job_id, sub, el in rows
            )
        else:
            out = self._render_table(rows)
        return CommandReply(stdout=out, stderr="".join(e + "\n" for e in errors), returncode=rc)

    def _qstat_server(self, full: bool, as_json: bool, operands: Sequence[str]) -> CommandReply:
        """``qstat -B [-f [-F json]]``: the server's status and attributes."""
        for operand in operands:
            if operand not in (self.server_name, self.server_name.split(".")[0]):
                return CommandReply(stderr=f"qstat: cannot connect to server {operand} (errno=15010)\n", returncode=162)
        elements = self.engine.elements()
        count = {
            "Queued": sum(e.state == "queued" for e in elements),
            "Running": sum(e.state == "running" for e in elements),
            "Exiting": sum(e.state == "exiting" for e in elements),
        }
        total = sum(count.values())
        torque = self.flavour == "torque"
        last = "Complete" if torque else "Begun"
        state_count = (
            f"Transit:0 Queued:{count['Queued']} Held:0 Waiting:0 Running:{count['Running']} "
            f"Exiting:{count['Exiting']} {last}:{sum(e.state == 'finished' for e in elements) if torque else 0} "
        )
        attrs: dict[str, Any] = {
            "server_state": "Active",
            "server_host": self.hostname,
            "scheduling": "True",
            "total_jobs": str(total),
            "state_count": state_count,
            "default_queue": self.default_queue,
            "log_events": "511",
            "mail_from": "adm",
            "query_other_jobs": "True",
            "scheduler_iteration": "600",
        }
        if torque:
            attrs.update({"pbs_version": "6.1.3", "keep_completed": "300", "next_job_number": str(self.peek_seq())})
        else:
            attrs.update({"flatuid": "True", "job_history_enable": "True", "pbs_version": "22.05.11"})
        if self.max_array_size is not None:
            attrs["max_job_array_size" if torque else "max_array_size"] = str(self.max_array_size)
        if not full:
            head = "Server             Max   Tot   Que   Run   Hld   Wat   Trn   Ext Status\n"
            rule = "---------------- ----- ----- ----- ----- ----- ----- ----- ----- -----------\n"
            row = (
                f"{self.server_name[:16]:<16} {0:>5} {total:>5} {count['Queued']:>5} {count['Running']:>5} "
                f"{0:>5} {0:>5} {0:>5} {count['Exiting']:>5} Active\n"
            )
            return CommandReply(stdout=head + rule + row)
        if as_json:
            document = {
                "timestamp": int(time.time()),
                "pbs_version": "22.05.11",
                "pbs_server": self.server_name,
                "Server": {self.server_name: {k: _json_value(v) for k, v in attrs.items()}},
            }
            return CommandReply(stdout=_cjson_print(document) + "\n")
        lines = [f"Server: {self.server_name}", *(_wrap_line(k, v, True) for k, v in attrs.items())]
        return CommandReply(stdout="\n".join(lines) + "\n\n")

    def _all_rows(
        self, history: bool, expand: bool, users: set[str], queue: str | None = None
    ) -> list[tuple[str, _Submission, Element | None]]:
        rows: list[tuple[str, _Submission, Element | None]] = []
        for sub in self._subs.values():
            if queue is not None and sub.queue != queue:
                continue
            if users and sub.owner.split("@")[0] not in users and "all" not in users:
                continue
            if not history and _sub_finished(sub):
                continue
            if sub.indices is None:
                rows.append((sub.job_id, sub, sub.elements[0]))
                continue
            rows.append((sub.job_id, sub, None))
            if expand:
                rows.extend((e.job_id, sub, e) for e in sub.elements)
        return rows

    def _lookup(self, operand: str) -> tuple[_Submission, Element | None] | None:
        match = _JOB_ID.match(operand)
        if match is None:
            return None
        seq, index, server = int(match.group(1)), match.group(2), match.group(3)
        if server is not None and server != self.server_name and not self.server_name.startswith(server + "."):
            return None
        sub = self._subs.get(seq)
        if sub is None:
            return None
        if sub.indices is None:
            return (sub, sub.elements[0]) if index is None and "[" not in operand else None
        if "[" not in operand:
            return None  # GUESS: an array must be named with brackets ("100[]"), as PBS ids are
        if index == "":
            return sub, None
        for element in sub.elements:
            if element.index == int(index or -1):
                return sub, element
        return None

    def _canonical(self, sub: _Submission, element: Element | None) -> str:
        return element.job_id if element is not None else sub.job_id

    def _unknown(self, command: str, operand: str) -> str:
        full = operand if "." in operand.split("]")[-1] else f"{operand}.{self.server_name}"
        if self.flavour == "torque":
            return f"{command}: Unknown Job Id Error {full}"
        return f"{command}: Unknown Job Id {full}"

    # --- rendering ------------------------------------------------------------------------

    def _attributes(self, sub: _Submission, element: Element | None) -> list[tuple[str, Any]]:
        """``(name, value)`` in PBS's order; values are strings or dicts (Resource_List...)."""
        torque = self.flavour == "torque"
        now = time.time()
        members = sub.elements if element is None else [element]
        started = [e for e in members if e.start_time is not None]
        state = self._native_state(element) if element is not None else self._parent_state(sub)
        name = element.name if element is not None else sub.name
        attrs: list[tuple[str, Any]] = [("Job_Name", name), ("Job_Owner", sub.owner)]
        if started and element is not None:
            first = started[0]
            ended = first.end_time or now
            used = {  # placeholders: nothing is measured
                "cpupercent": "0",
                "cput": "00:00:00",
                "mem": "0kb",
                "ncpus": str(_ncpus(sub.resources, self.flavour)),
                "vmem": "0kb",
                "walltime": _hms(ended - (first.start_time or ended)),
            }
            attrs.append(("resources_used", used))
        attrs += [("job_state", state), ("queue", sub.queue), ("server", self.server_name), ("Checkpoint", "u")]
        attrs.append(("ctime", time.ctime(sub.submit_time)))
        attrs.append(
            (
                "Error_Path",
                sub.error_path if element is None else f"{sub.submit_host}:{element.attrs['Error_Path']}",
            )
        )
        if element is not None and element.start_time is not None:
            ncpus = _ncpus(sub.resources, self.flavour)
            attrs.append(("exec_host", f"{self.hostname}/0" + (f"*{ncpus}" if ncpus > 1 and not torque else "")))
            if not torque:
                attrs.append(("exec_vnode", f"({self.hostname}:ncpus={ncpus})"))
        attrs += [("Hold_Types", "n"), ("Join_Path", sub.join), ("Keep_Files", "n"), ("Mail_Points", "a")]
        attrs.append(("mtime", time.ctime(max([e.end_time or e.start_time or e.submit_time for e in members]))))
        attrs.append(
            ("Output_Path", sub.output_path if element is None else f"{sub.submit_host}:{element.attrs['Output_Path']}")
        )
        attrs += [
            ("Priority", "0"),
            ("qtime", time.ctime(sub.submit_time)),
            ("Rerunable", sub.extra.get("Rerunable", "True")),
        ]
        attrs.append(("Resource_List", dict(sub.resources)))
        if element is not None and element.start_time is not None:
            attrs.append(("stime", time.ctime(element.start_time)))
            if element.pid is not None:
                attrs.append(("session_id", str(element.pid)))
        if element is not None and element.state == "finished" and element.end_time is not None and not torque:
            attrs.append(("obittime", time.ctime(element.end_time)))
        if not torque:
            attrs.append(("jobdir", sub.variables.get("PBS_O_HOME", "")))
            attrs.append(("substate", str(_substate(state, element))))
        attrs.append(("Variable_List", dict(sub.variables)))
        if not torque and element is not None:
            comment = self._comment(element)
            if comment:
                attrs.append(("comment", comment))
        if torque:
            attrs += [("euser", sub.owner.split("@")[0]), ("egroup", sub.owner.split("@")[0]), ("queue_type", "E")]
        attrs.append(("etime", time.ctime(sub.submit_time)))
        if not torque and element is not None and element.start_time is not None:
            attrs.append(("run_count", "1"))
        exit_status = self._exit_status(element) if element is not None else None
        if exit_status is not None:
            attrs.append(("exit_status" if torque else "Exit_status", str(exit_status)))
        if torque:
            attrs.append(("submit_args", sub.submit_args))
            if element is not None and element.start_time is not None:
                attrs += [("start_time", str(int(element.start_time))), ("start_count", "1")]
            attrs.append(("fault_tolerant", "False"))
            if element is not None and element.state == "finished" and element.end_time is not None:
                attrs.append(("comp_time", str(int(element.end_time))))
            attrs += [("job_radix", "0"), ("submit_host", sub.submit_host)]
            if element is not None and element.index is not None:
                attrs.append(("job_array_id", str(element.index)))
            if element is None and sub.indices is not None:
                attrs.append(("job_array_request", _compress(sub.indices)))
            attrs.append(("init_work_dir", sub.variables.get("PBS_O_WORKDIR", "")))
        else:
            attrs.append(("Submit_arguments", sub.submit_args))
            if sub.account:
                attrs.append(("Account_Name", sub.account))
            if element is not None and element.state == "finished" and element.end_time is not None:
                attrs.append(("history_timestamp", str(int(element.end_time))))
            attrs.append(("project", "_pbs_project_default"))
            attrs.append(("Submit_Host", sub.submit_host))
            if element is None and sub.indices is not None:
                counts = {"Queued": 0, "Running": 0, "Exiting": 0, "Expired": 0}
                for e in sub.elements:
                    counts[
                        {"queued": "Queued", "running": "Running", "exiting": "Exiting"}.get(e.state, "Expired")
                    ] += 1
                remaining = [e.index for e in sub.elements if e.state == "queued" and e.index is not None]
                attrs += [
                    ("array", "True"),
                    ("array_state_count", "".join(f"{k}:{v} " for k, v in counts.items())),
                    ("array_indices_submitted", _compress(sub.indices)),
                    ("array_indices_remaining", _compress(remaining) if remaining else "-"),
                ]
            if element is not None and element.index is not None:
                attrs += [("array_id", sub.job_id), ("array_index", str(element.index))]
        return attrs

    def _parent_state(self, sub: _Submission) -> str:
        states = {e.state for e in sub.elements}
        if states == {"finished"}:
            return "C" if self.flavour == "torque" else "F"
        if self.flavour == "torque":
            # GUESS: TORQUE's array summary shows R once an element runs, else Q.
            return "R" if states & {"running", "exiting"} else "Q"
        if any(e.start_time is not None or e.state == "finished" for e in sub.elements):
            return "B"
        return "Q"

    def _comment(self, element: Element) -> str:
        if element.start_time is None and element.state == "queued" and element.attrs.get("comment"):
            return str(element.attrs["comment"])  # the scheduler's word on a job it cannot run
        if element.start_time is None:
            return "" if element.state != "finished" else "Job deleted before it ran"  # GUESS: wording
        when = time.strftime("%a %b %d at %H:%M", time.localtime(element.start_time))
        text = f"Job run at {when} on ({self.hostname}:ncpus={element.env.get('NCPUS', '1')})"
        if element.state == "finished":
            text += " and terminated" if element.killed else " and finished"  # GUESS: "terminated"
        return text

    def _render_json(self, rows: Sequence[tuple[str, _Submission, Element | None]]) -> str:
        document: dict[str, Any] = {
            "timestamp": int(time.time()),
            "pbs_version": "22.05.11",
            "pbs_server": self.server_name,
        }
        if rows:
            jobs: dict[str, Any] = {}
            for job_id, sub, element in rows:
                jobs[job_id] = {key: _json_value(value) for key, value in self._attributes(sub, element)}
            document["Jobs"] = jobs
        return _cjson_print(document) + "\n"

    def _render_text(self, job_id: str, sub: _Submission, element: Element | None, wrap: bool) -> str:
        lines = [f"Job Id: {job_id}"]
        for key, value in self._attributes(sub, element):
            if isinstance(value, dict):
                if key == "Variable_List":
                    lines.append(_wrap_line(key, ",".join(f"{k}={v}" for k, v in value.items()), wrap))
                else:
                    lines.extend(_wrap_line(f"{key}.{k}", str(v), wrap) for k, v in value.items())
            else:
                lines.append(_wrap_line(key, value, wrap))
        return "\n".join(lines) + "\n\n"

    def _render_table(self, rows: Sequence[tuple[str, _Submission, Element | None]]) -> str:
        # GUESS: column widths follow published outputs; ids are cut to the column width.
        if not rows:
            return ""
        torque = self.flavour == "torque"
        if torque:
            out = [
                "Job ID                    Name             User            Time Use S Queue",
                "------------------------- ---------------- --------------- -------- - -----",
            ]
        else:
            out = [
                "Job id            Name             User              Time Use S Queue",
                "----------------  ---------------- ----------------  -------- - -----",
            ]
        for job_id, sub, element in rows:
            state = self._native_state(element) if element is not None else self._parent_state(sub)
            name = element.name if element is not None else sub.name
            started = element is not None and element.start_time is not None
            used = "00:00:00" if started else "0"
            user = sub.owner.split("@")[0]
            if torque:
                out.append(f"{job_id[:25]:<25} {name[:16]:<16} {user[:15]:<15} {used:>8} {state} {sub.queue}")
            else:
                out.append(f"{job_id[:16]:<16}  {name[:16]:<16} {user[:16]:<16}  {used:>8} {state} {sub.queue}")
        return "\n".join(out) + "\n"

    # --- qdel -----------------------------------------------------------------------------

    def _qdel(self, request: CommandRequest) -> CommandReply:
        try:
            _, operands = getopt.getopt(list(request.argv), _QDEL_OPTS[self.flavour])
        except getopt.GetoptError as exc:
            raise _UsageError(f"qdel: {exc}\nusage: qdel [-W force] job_identifier...") from None
        if not operands:
            raise _UsageError("usage:\n\tqdel [-W force|suppress_email=X] [-x] job_identifier...")
        errors: list[str] = []
        rc = 0
        for operand in operands:
            found = self._lookup(operand)
            if found is None:
                errors.append(self._unknown("qdel", operand))
                rc = _UNKJOBID
                continue
            sub, element = found
            targets = sub.elements if element is None else [element]
            canonical = self._canonical(sub, element)
            live = [e for e in targets if e.state != "finished"]
            if not live:
                if self.flavour == "torque":
                    errors.append(
                        f"qdel: Request invalid for state of job MSG=invalid state for job - COMPLETE {canonical}"
                    )
                    rc = _BADSTATE["torque"]
                elif element is not None and element.index is not None:
                    # GUESS: text of PBSE_NOHISTARRAYSUBJOB for a finished subjob.
                    errors.append(f"qdel: Request invalid for finished array subjob {canonical}")
                    rc = _NOHISTARRAYSUBJOB
                else:
                    errors.append(f"qdel: Job has finished {canonical}")
                    rc = _HISTJOBID
                continue
            for target in live:
                self.engine.kill(target, (signal.SIGTERM,))
        return CommandReply(stderr="".join(e + "\n" for e in errors), returncode=rc)


# --- helpers --------------------------------------------------------------------------------


def never() -> bool:
    """The gate of a job that cannot start: no node has what it asks for."""
    return False


def _sub_finished(sub: _Submission) -> bool:
    return all(e.state == "finished" for e in sub.elements)


def _substate(state: str, element: Element | None) -> int:
    if state == "F" and element is not None and element.walltime_exceeded:
        return 93  # JOB_SUBSTATE_FAILED: PBS killed it, nobody deleted it. GUESS
    if state == "F" and element is not None and element.killed:
        return 91  # JOB_SUBSTATE_TERMINATED: deleted
    return {"Q": 10, "R": 42, "E": 51, "F": 92, "X": 92, "B": 42, "C": 59}.get(state, 10)


def _split_top(value: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside single or double quotes (quotes are kept)."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in value:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == sep:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _parse_variable_list(value: str, env: dict[str, str]) -> dict[str, str]:
    """``-v A=1,B='x,y',C``: a variable without a value is taken from qsub's environment."""
    found: dict[str, str] = {}
    for item in _split_top(value):
        item = item.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise _UsageError(f"qsub: illegal -v value {value!r} (bad variable name {key!r})")
        if not sep:
            found[key] = env.get(key, "")
            continue
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"":
            val = val[1:-1]
        found[key] = val
    return found


def _parse_array_spec(spec: str, flavour: str) -> tuple[list[int], int | None]:
    """PBS Pro ``X-Y[:Z][%max]`` or TORQUE ``list[%max]`` (``0-4``, ``1,3,5-7``)."""
    body, _, limit_text = spec.partition("%")
    limit: int | None = None
    if limit_text:
        if not limit_text.isdigit() or int(limit_text) < 1:
            raise _UsageError(f"qsub: illegal -{'J' if flavour == 'pbspro' else 't'} value {spec!r}")
        limit = int(limit_text)
    if flavour == "pbspro":
        match = re.match(r"^(\d+)-(\d+)(?::(\d+))?$", body)
        if match is None:
            raise _UsageError(f"qsub: illegal -J value {spec!r} (use X-Y[:Z][%max])")
        start, end, step = int(match.group(1)), int(match.group(2)), int(match.group(3) or 1)
        # GUESS: PBS Pro requires X < Y (an array of one subjob is refused).
        if start >= end or step < 1:
            raise _UsageError(f"qsub: illegal -J value {spec!r} (need X < Y and Z >= 1)")
        indices = list(range(start, end + 1, step))
    else:
        indices = []
        for item in body.split(","):
            match = re.match(r"^(\d+)(?:-(\d+))?$", item.strip())
            if match is None:
                raise _UsageError(f"qsub: illegal -t value {spec!r} (use a list like 0-4,7)")
            low = int(match.group(1))
            high = int(match.group(2) or low)
            if high < low:
                raise _UsageError(f"qsub: illegal -t value {spec!r}")
            indices.extend(range(low, high + 1))
        indices = sorted(set(indices))
    return indices, limit


def _walltime_seconds(value: str) -> float:
    match = _WALLTIME.match(value)
    if match is None:  # validated at parse time
        raise _UsageError(f"qsub: illegal walltime {value!r}")
    hours, minutes, seconds = match.group(1), match.group(2), match.group(3)
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)


def _ncpus(resources: dict[str, str], flavour: str) -> int:
    if flavour == "torque":
        match = re.search(r"ppn=(\d+)", resources.get("nodes", ""))
        if match:
            return int(match.group(1))
        return int(resources.get("ncpus", resources.get("procs", "1")) or 1)
    if "select" in resources:
        total = 0
        for chunk in resources["select"].split("+"):
            parts = chunk.split(":")
            count = int(parts[0]) if parts[0].isdigit() else 1
            cpus = next((int(p.split("=")[1]) for p in parts if p.startswith("ncpus=")), 1)
            total += count * cpus
        return max(total, 1)
    return int(resources.get("ncpus", "1") or 1)


def _resource_list(resources: dict[str, str], flavour: str) -> dict[str, str]:
    listed = dict(resources)
    if flavour == "pbspro":
        listed.setdefault("ncpus", str(_ncpus(resources, flavour)))
        listed.setdefault("nodect", "1")
        listed.setdefault("place", "pack")
        listed.setdefault("select", f"1:ncpus={listed['ncpus']}")
    else:
        listed.setdefault("nodes", "1")
        listed.setdefault("nodect", "1")
    if "select" in resources:
        mems = [p.split("=")[1] for p in resources["select"].replace("+", ":").split(":") if p.startswith("mem=")]
        if mems and "mem" not in resources:
            listed["mem"] = mems[0]
    return dict(sorted(listed.items()))


def _compress(indices: Iterable[int]) -> str:
    """``[1,2,3,5]`` -> ``1-3,5``."""
    values = sorted(indices)
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)


def _hms(seconds: float) -> str:
    total = int(seconds)
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _json_value(value: Any) -> Any:
    """What ``pbs_json_insert_parsed`` does: a value that parses as JSON is inserted parsed."""
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    try:
        parsed = json.loads(value)
    except (ValueError, TypeError):
        return value
    return parsed if isinstance(parsed, int | float | bool) or parsed is None else value


def _cjson_print(value: Any, depth: int = 0) -> str:
    """Render like ``cJSON_Print``: tab indentation, ``"key":<tab>value``."""
    if isinstance(value, dict):
        if not value:
            return "{\n" + "\t" * depth + "}"
        inner = ",\n".join(
            "\t" * (depth + 1) + json.dumps(k) + ":\t" + _cjson_print(v, depth + 1) for k, v in value.items()
        )
        return "{\n" + inner + "\n" + "\t" * depth + "}"
    return json.dumps(value)


def _wrap_line(key: str, value: str, wrap: bool, width: int = 78) -> str:
    """``    key = value``; long values continue on lines starting with a tab, broken after commas."""
    head = f"    {key} = "
    if not wrap or len(head) + len(value) <= width:
        return head + value
    tokens = re.findall(r"[^,]*,|[^,]+$", value)
    lines: list[str] = []
    current = head
    for token in tokens:
        if len(current) + len(token) > width and current.strip() and current != head:
            lines.append(current)
            current = "\t"
        current += token
    lines.append(current)
    return "\n".join(lines)
