"""IBM Spectrum LSF command-line emulator: ``bsub``, ``bjobs``, ``bkill``.

Jobs run as local processes through :class:`~pycrew_emulators.batch.BatchEngine`; the
shims in ``emulator.bin_directory`` speak the real commands' options, outputs and exit
codes.

Sources used (reference and real output, read through the project's search tool):

* IBM LSF 10.1 docs: ``bjobs -json`` (only with ``-o``; not with ``-noheader``), ``bjobs
  -o`` field syntax (``field[:width]``, ``delimiter='c'``), ``LSB_BJOBS_CONSISTENT_EXIT_CODE``
  (``bjobs 123`` for an unknown job: ``Job <123> is not found``; a finished job without
  ``-a``: ``No unfinished job found``; the default table header ``JOBID USER STAT QUEUE
  FROM_HOST EXEC_HOST JOB_NAME SUBMIT_TIME``), ``bkill`` (INT and TERM, then KILL,
  ``JOB_TERMINATE_INTERVAL`` apart; ``bkill 0``; ``"job_ID[index]"``), "Kill multiple
  jobs" (``Job <267> is being terminated``), ``bsub -K`` (126 when killed while
  pending), job exit information (exit codes; 128 + signal).
* Real ``bjobs -o ... -json`` records quoted in public code (Roddy's LSFJobManagerSpec,
  balsam, an orchestrator test, a Go collector): ``{"COMMAND":"bjobs","JOBS":n,
  "RECORDS":[{...}]}`` with two-space indentation and no space after colons, upper-case
  keys (``JOB_DESCRIPTION`` for ``description``), every value a string, ``""`` when
  empty, ``/`` escaped as ``\\/``, ``JOBINDEX`` ``"0"`` for a plain job, ``SUBMIT_TIME``
  ``Dec 28 19:56``, ``FINISH_TIME`` ``Dec 28 19:56 L``, ``EXIT_CODE`` ``""`` for DONE,
  ``EXEC_HOST`` ``host:host`` per slot, ``SUB_CWD`` ``$HOME``.
* equinor/ert ``lsf_driver.py`` (production driver for real LSF): ``Job <([0-9]+)> is
  submitted to .*queue``; 255 = flaky, retried; ``Job has already finished``; ``is being
  terminated`` / ``is being signaled``; ``bkill -s SIGTERM``; bsub failure texts (``No
  such queue``, ``Error in rusage section``, ...); states ``PEND RUN DONE EXIT PSUSP USUSP
  SSUSP UNKWN ZOMBI PDONE``; ``bjobs -noheader -o "jobid stat exec_host delimiter='^'"``;
  ``-o exit_code`` may be ``-``.
* Real messages in public code: ``Job <327> is submitted to default queue <normal>.``;
  ``Job <13298296>: Job has already finished`` and ``Job <12345>: No matching job found``
  (stderr, exit 255); ``Job <408347[1-2:1]>: Job has already finished`` for consecutive
  array elements (LSF 10.1); ``LSF is processing your request. Please wait ...`` (mixed
  into real ``bjobs`` output); ``Job <54421878>: Failed in an LSF library call: Slave LIM
  configuration is not ready yet`` (bkill, exit 255); the job report appended to the
  ``-o`` file (``Sender: LSF System <lsfadmin@host>`` ... ``Exited with exit code 120.``
  ... ``The output (if any) is above this job summary.``); ``#BSUB`` directives with
  ``bsub < script``.

Every behaviour not confirmed by those is marked ``# GUESS:`` below and listed in the
package README.
"""

from __future__ import annotations

import getpass
import re
import shlex
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pycrew_emulators.batch import (
    SYSTEM_PATH,
    BatchEmulator,
    CommandReply,
    CommandRequest,
    Element,
    iter_directives,
    spool_script,
)

__all__ = ["LsfEmulator"]

_BSUB_VALUE = frozenset(
    [
        "-J", "-Jd", "-q", "-n", "-R", "-M", "-W", "-We", "-P", "-o", "-oo", "-e", "-eo", "-env", "-cwd",
        "-app", "-G", "-g", "-sla", "-u", "-w", "-m", "-i", "-is", "-c", "-L", "-E", "-Ep", "-C", "-F", "-D",
        "-S", "-v", "-b", "-t", "-k", "-a", "-ext", "-sp", "-U", "-outdir", "-gpu", "-rnc", "-jsdl", "-Lp",
    ]
)  # fmt: skip
_BSUB_FLAG = frozenset(["-B", "-N", "-x", "-r", "-rn", "-H", "-hl", "-ul", "-K", "-Ne", "-XF"])
_BJOBS_VALUE = frozenset(["-o", "-u", "-q", "-J", "-m", "-P", "-g", "-app", "-sla", "-G", "-Lp"])
_BJOBS_FLAG = frozenset(
    ["-json", "-a", "-d", "-p", "-r", "-s", "-noheader", "-w", "-W", "-X", "-A", "-hms", "-aps", "-x", "-UF"]
)
_NAME = re.compile(r"^(?P<name>[^\[\]]*)(?:\[(?P<spec>[^\]]*)\])?(?:%(?P<limit>\d+))?$")
_JOB_ARG = re.compile(r"^(?P<id>\d+)(?:\[(?P<spec>[^\]]*)\])?$")
_MAX_ARRAY_INDEX = 1000  # MAX_JOB_ARRAY_SIZE default


class _UsageError(Exception):
    def __init__(self, message: str, code: int = 255) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Job:
    """One ``bsub``: a plain job or a job array."""

    job_id: int
    name: str
    queue: str
    user: str
    indices: list[int] | None
    elements: list[Element]
    description: str
    project: str
    slots: int
    runlimit: float | None
    memlimit: str
    resreq: str
    command: str
    output_spec: str
    error_spec: str
    submit_host: str
    submit_cwd: Path
    home: Path


class LsfEmulator(BatchEmulator):
    """LSF (``bsub``/``bjobs``/``bkill``) command-line emulator.

    Args:
        slots: At most this many job processes run at once.
        kill_grace_seconds: ``JOB_TERMINATE_INTERVAL``: between INT, TERM and KILL.
        first_job_id: The first job's id.
        cluster_name: Shown in job reports.
        stdout_direct: ``LSB_STDOUT_DIRECT=Y``: the ``-o``/``-e`` files are written while
            the job runs. Default (LSF's default): output is spooled and copied to them
            when the job ends.

    Attributes:
        queues: Queue names ``bsub -q`` accepts (add to it); default queue ``normal``.
        max_array_size: ``MAX_JOB_ARRAY_SIZE`` (default 1000): the largest array index
            ``bsub`` accepts, shown by ``bparams -a``.
    """

    flavour = "lsf"
    commands = ("bsub", "bjobs", "bkill", "bparams")
    default_queue = "normal"

    def __init__(
        self,
        *,
        slots: int = 16,
        kill_grace_seconds: float = 2.0,
        first_job_id: int = 1000,
        cluster_name: str = "emu_cluster",
        stdout_direct: bool = False,
    ) -> None:
        self.cluster_name = cluster_name
        self.queues: set[str] = {"normal", "short", "long"}
        self.max_array_size = _MAX_ARRAY_INDEX
        self.stdout_direct = stdout_direct
        self._jobs: dict[int, _Job] = {}
        super().__init__(slots=slots, kill_grace_seconds=kill_grace_seconds, first_job_id=first_job_id)

    # --- BatchEmulator hooks ------------------------------------------------------------

    def _handle(self, request: CommandRequest) -> CommandReply:
        try:
            if request.command == "bsub":
                return self._bsub(request)
            if request.command == "bjobs":
                return self._bjobs(request)
            if request.command == "bparams":
                return self._bparams(request)
            return self._bkill(request)
        except _UsageError as exc:
            return CommandReply(stderr=f"{exc}\n", returncode=exc.code)

    def _transient(self, command: str, argv: Sequence[str] = ()) -> CommandReply:
        reason = "Failed in an LSF library call: Slave LIM configuration is not ready yet"
        if command == "bsub":
            return CommandReply(stderr=f"{reason}. Job not submitted.\n", returncode=255)
        if command == "bkill":
            ids = [a for a in argv if _JOB_ARG.match(a)]
            if ids:
                return CommandReply(stderr="".join(f"Job <{i}>: {reason}\n" for i in ids), returncode=255)
        return CommandReply(stderr=f"{reason}\n", returncode=255)  # GUESS: bjobs prints the reason alone

    def _busy_lines(self, command: str) -> str:
        return "LSF is processing your request. Please wait ...\n" * 2

    def _native_state(self, element: Element) -> str:
        if element.state == "queued":
            return "PEND"
        if element.state in ("running", "exiting"):
            return "RUN"
        return "DONE" if self._exit_code(element) == 0 else "EXIT"

    def _exit_status(self, element: Element) -> int | None:
        if element.state != "finished" or (element.returncode is None and not element.start_error):
            return None
        return self._exit_code(element)

    def _exit_code(self, element: Element) -> int | None:
        if element.start_error:
            return 127
        if element.returncode is None:
            return None if not element.killed else -1
        sig = element.signal_number
        return 128 + sig if sig is not None else element.returncode

    def _on_exit(self, element: Element) -> None:
        if element.stdout_path is None:
            return
        job = self._jobs.get(element.seq)
        if job is None:
            return
        try:
            with element.stdout_path.open("a") as handle:
                handle.write(self._report(job, element))
        except OSError:
            pass  # LSF would mail the report; the emulator drops it

    # --- bsub -----------------------------------------------------------------------------

    def _bsub(self, request: CommandRequest) -> CommandReply:
        opts, command = _parse_bsub(list(request.argv))
        if command:
            # GUESS: LSF joins the command's words with spaces into one command line for
            # the shell, so quoting inside single words is lost: pass the whole command
            # line as ONE argument (e.g. built with shlex.join), or a script on stdin.
            script = "#!/bin/sh\n" + " ".join(command) + "\n"
            command_text = " ".join(command)
        else:
            script = request.read_stdin()
            command_text = "; ".join(line for line in script.splitlines() if line.strip())
            directive_opts: list[tuple[str, str]] = []
            for line in iter_directives(script, "#BSUB"):
                try:
                    found, rest = _parse_bsub(shlex.split(line))
                except ValueError as exc:
                    raise _UsageError(f"Bad #BSUB line: {line} ({exc}). Job not submitted.") from None
                if rest:
                    raise _UsageError(f"Bad #BSUB line: {line}. Job not submitted.")
                directive_opts.extend(found)
            opts = directive_opts + opts
        if not script.strip():
            raise _UsageError("No command is specified. Job not submitted.")  # GUESS: wording
        return self._submit(request, opts, script, command_text)

    def _submit(
        self, request: CommandRequest, opts: Sequence[tuple[str, str]], script: str, command: str
    ) -> CommandReply:
        values: dict[str, str] = {}
        resreqs: list[str] = []
        for key, value in opts:
            if key == "-R":
                resreqs.append(value)
            else:
                values[key] = value
        if "-H" in values:
            raise _UsageError("bsub: -H (hold) is not supported by the emulator: it has no bresume", 255)
        if "-K" in values:
            raise _UsageError("bsub: -K (wait for the job) is not supported by the emulator", 255)
        env_in = request.env
        queue = values.get("-q", self.default_queue)
        if queue not in self.queues:
            raise _UsageError(f"{queue}: No such queue. Job not submitted.")
        spec = values.get("-J", "")
        match = _NAME.match(spec)
        if match is None:
            raise _UsageError("Bad job name. Job not submitted.")
        name = match.group("name") or (command.split()[0] if command.strip() else "")
        if len(name) > 4094:
            raise _UsageError("Bad job name. Job not submitted.")
        indices: list[int] | None = None
        limit: int | None = None
        if match.group("spec") is not None:
            indices = _parse_index_list(match.group("spec"), self.max_array_size)
            limit = int(match.group("limit")) if match.group("limit") else None
        elif match.group("limit"):
            raise _UsageError("Bad job name. Job not submitted.")
        slots = 1
        if "-n" in values:
            if not re.match(r"^\d+(,\d+)?$", values["-n"]) or int(values["-n"].split(",")[0]) < 1:
                raise _UsageError(f"{values['-n']}: Bad argument for option -n. Job not submitted.")  # GUESS
            slots = int(values["-n"].split(",")[-1])
        for resreq in resreqs:
            _check_resreq(resreq)
        runlimit = _parse_runlimit(values["-W"]) if "-W" in values else None
        memlimit = values.get("-M", "")
        if memlimit and not re.match(r"^\d+(\.\d+)?[KMGTPE]?B?$", memlimit, re.IGNORECASE):
            raise _UsageError(f"{memlimit}: Bad argument for option -M. Job not submitted.")  # GUESS: wording

        dependency = _parse_dependency(values["-w"]) if "-w" in values else None
        if dependency is not None and dependency[1] not in self._jobs:
            # GUESS: the wording of bsub's refusal of a dependency on an unknown job.
            raise _UsageError(f"{values['-w']}: No matching job found. Job not submitted.")
        job_id = self.next_seq()
        user = env_in.get("USER") or env_in.get("LOGNAME") or getpass.getuser()
        home = Path(env_in.get("HOME") or Path("~").expanduser())
        cwd = request.cwd / values["-cwd"] if "-cwd" in values else request.cwd
        env_base = _job_environment(values.get("-env", "all"), env_in)
        out_spec = values.get("-oo", values.get("-o", ""))
        err_spec = values.get("-eo", values.get("-e", ""))
        append = "-oo" not in values
        script_path = spool_script(self.spool, f"{job_id}.job", script)
        description = values.get("-Jd", "")
        now = time.time()
        elements: list[Element] = []
        for index in indices if indices is not None else [None]:
            el_name = f"{name}[{index}]" if index is not None else name
            el_id = f"{job_id}[{index}]" if index is not None else str(job_id)
            out_path = _expand_output(out_spec, cwd, job_id, index) if out_spec else None
            err_path = _expand_output(err_spec, cwd, job_id, index) if err_spec else None
            merge = out_path is not None and (err_path is None or err_path == out_path)
            write_out, write_err = out_path, None if merge else err_path
            deliveries: list[tuple[Path, Path, str]] = []
            if not self.stdout_direct:
                if out_path is not None:
                    write_out = self.spool / f"{el_id}.out"
                    deliveries.append((write_out, out_path, "a" if append else "w"))
                if err_path is not None and not merge:
                    write_err = self.spool / f"{el_id}.err"
                    deliveries.append((write_err, err_path, "a" if "-eo" not in values else "w"))
            job_env = {
                "HOME": str(home),
                "USER": user,
                "LOGNAME": user,
                "SHELL": "/bin/bash",
                "PATH": SYSTEM_PATH,
                **env_base,
                "LSB_JOBID": str(job_id),
                "LSB_JOBINDEX": str(index if index is not None else 0),
                "LSB_JOBNAME": el_name,  # GUESS: an element's name includes its index
                "LSB_QUEUE": queue,
                "LSB_HOSTS": " ".join([self.hostname] * slots),
                "LSB_MCPU_HOSTS": f"{self.hostname} {slots}",
                "LSB_DJOB_NUMPROC": str(slots),
                "LSB_MAX_NUM_PROCESSORS": str(slots),
                "LSB_SUB_HOST": self.hostname,
                "LS_SUBCWD": str(cwd),
                "LSB_EXEC_CLUSTER": self.cluster_name,
                "LSB_JOBFILENAME": str(script_path),
                "LSFUSER": user,
            }
            if indices is not None:
                job_env["LSB_JOBINDEX_END"] = str(max(indices))
            if "-P" in values:
                job_env["LSB_PROJECT_NAME"] = values["-P"]
            if out_path is not None:
                job_env["LSB_OUTPUTFILE"] = str(out_path)
            if err_path is not None:
                job_env["LSB_ERRORFILE"] = str(err_path)
            elements.append(
                Element(
                    seq=job_id,
                    index=index,
                    job_id=el_id,
                    array_id=str(job_id) if indices is not None else None,
                    name=el_name,
                    queue=queue,
                    script_path=script_path,
                    env=job_env,
                    cwd=cwd,
                    stdout_path=write_out,
                    stderr_path=write_err,
                    stdout_final=out_path,
                    stderr_final=None if merge else err_path,
                    deliveries=deliveries,
                    merge_stderr=merge,
                    output_mode="a" if append and self.stdout_direct else "w",
                    walltime=runlimit,
                    group=str(job_id) if indices is not None else None,
                    group_limit=limit,
                    submit_argv=tuple(request.argv),
                    kill_signals=(signal.SIGINT, signal.SIGTERM),
                    walltime_signals=(signal.SIGUSR2,),  # GUESS: run limit kills exit 140 (128 + SIGUSR2)
                    submit_time=now,
                    gate=self._gate(dependency),
                    attrs={"dependency": values.get("-w", ""), "condition": dependency},
                )
            )
        self._jobs[job_id] = _Job(
            job_id=job_id,
            name=name,
            queue=queue,
            user=user,
            indices=indices,
            elements=elements,
            description=description,
            project=values.get("-P", "default"),
            slots=slots,
            runlimit=runlimit,
            memlimit=memlimit,
            resreq=" ".join(resreqs),
            command=command,
            output_spec=out_spec,
            error_spec=err_spec,
            submit_host=self.hostname,
            submit_cwd=cwd,
            home=home,
        )
        self.engine.add(elements)
        where = f"queue <{queue}>" if "-q" in values else f"default queue <{queue}>"
        return CommandReply(stdout=f"Job <{job_id}> is submitted to {where}.\n")

    def _gate(self, condition: tuple[str, int] | None) -> Callable[[], bool] | None:
        """An element's start gate for its dependency (none without one)."""
        if condition is None:
            return None
        return lambda: self._dependency(condition) == "met"

    def _dependency(self, condition: tuple[str, int]) -> str:
        """``"met"``, ``"waiting"`` or ``"never"`` for a ``done(N)`` / ``ended(N)`` condition (under the lock)."""
        kind, job_id = condition
        elements = self._jobs[job_id].elements
        finished = [e for e in elements if e.state == "finished"]
        if kind == "done" and any(e.killed or e.returncode != 0 for e in finished):
            return "never"  # a job that failed or was killed never becomes DONE
        return "met" if len(finished) == len(elements) else "waiting"

    def _pend_reason(self, element: Element) -> str:
        if element.state != "queued":
            return ""
        condition = element.attrs.get("condition")
        if condition is not None:
            state = self._dependency(condition)
            if state == "never":
                return "Dependency condition invalid or never satisfied;"
            if state == "waiting":
                return "Job dependency condition not satisfied;"
        return "New job is waiting for scheduling;"

    # --- bjobs ----------------------------------------------------------------------------

    def _bjobs(self, request: CommandRequest) -> CommandReply:
        flags: set[str] = set()
        values: dict[str, str] = {}
        operands: list[str] = []
        argv = list(request.argv)
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg in _BJOBS_FLAG:
                flags.add(arg)
            elif arg in _BJOBS_VALUE:
                if i + 1 >= len(argv):
                    raise _UsageError(f"bjobs: option requires an argument -- {arg[1:]}\n{_BJOBS_USAGE}")
                values[arg] = argv[i + 1]
                i += 1
            elif arg.startswith("-") and arg != "-":
                raise _UsageError(f"bjobs: illegal option -- {arg[1:]}\n{_BJOBS_USAGE}")
            else:
                operands.append(arg)
            i += 1
        as_json = "-json" in flags
        if as_json and "-o" not in values:
            raise _UsageError("bjobs: the -json option must be used with the -o option.")  # GUESS: wording
        if as_json and "-noheader" in flags:
            raise _UsageError("bjobs: the -json and -noheader options cannot be used together.")  # GUESS: wording
        if "-l" in argv:
            raise _UsageError('bjobs: -l is not emulated; use -o "..." -json')
        fields: list[tuple[str, int, Callable[[Element], str]]] | None = None
        delimiter: str | None = None
        if "-o" in values:
            parsed, delimiter = _parse_format(values["-o"])
            fields = []
            for field_name, width in parsed:
                key, recommended, render = self._field(field_name)
                fields.append((key, recommended if width == 0 else (width or -1), render))
        show_all = "-a" in flags
        only_done = "-d" in flags
        only_pend = "-p" in flags
        only_run = "-r" in flags
        errors: list[str] = []
        error_records: list[dict[str, str]] = []
        selected: list[Element] = []
        if operands:
            for operand in operands:
                found = self._select(operand)
                if found is None:
                    message = f"Job <{operand}> is not found"
                    errors.append(message)
                    error_records.append({"ERROR": message})  # GUESS: how -json reports it
                    continue
                selected.extend(found)
        else:
            selected = [e for job in self._jobs.values() for e in job.elements]
        if "-u" in values and values["-u"] != "all":
            selected = [e for e in selected if self._jobs[e.seq].user == values["-u"]]
        if "-q" in values:
            selected = [e for e in selected if e.queue == values["-q"]]
        if "-J" in values:
            pattern = re.compile("^" + re.escape(values["-J"]).replace(r"\*", ".*") + "$")
            selected = [e for e in selected if pattern.match(self._jobs[e.seq].name) or pattern.match(e.name)]

        def visible(element: Element) -> bool:
            finished = element.state == "finished"
            if only_done:
                return finished
            if only_pend:
                return element.state == "queued"
            if only_run:
                return element.state in ("running", "exiting")
            return show_all or not finished

        shown = [e for e in selected if visible(e)]
        rc = 255 if errors else 0
        if as_json:
            assert fields is not None
            records = [{key: render(e) for key, _, render in fields} for e in shown]
            return CommandReply(stdout=_lsf_json(records + error_records), returncode=rc)
        stderr = "".join(e + "\n" for e in errors)
        if not shown:
            if not errors:
                stderr += "No job found\n" if show_all or only_done else "No unfinished job found\n"
            return CommandReply(stderr=stderr, returncode=rc)
        header = "-noheader" not in flags
        if fields is not None:
            lines = []
            if header:
                lines.append(_join_row([(key, width) for key, width, _ in fields], delimiter))
            for element in shown:
                lines.append(_join_row([(render(element) or "-", width) for _, width, render in fields], delimiter))
            return CommandReply(stdout="\n".join(lines) + "\n", stderr=stderr, returncode=rc)
        return CommandReply(stdout=self._default_table(shown, header, "-w" in flags), stderr=stderr, returncode=rc)

    def _default_table(self, elements: Sequence[Element], header: bool, wide: bool) -> str:
        # GUESS: column widths follow IBM's example; LSF's own widths may differ slightly.
        lines = []
        if header:
            lines.append("JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME")
        for element in elements:
            job = self._jobs[element.seq]
            name = element.name
            if not wide and len(name) > 10:
                name = "*" + name[-9:]
            exec_host = self._exec_host(job, element, table=True) or "-"
            lines.append(
                f"{job.job_id:<7} {job.user[:7]:<7} {self._native_state(element):<5} {job.queue[:10]:<10} "
                f"{job.submit_host[:11]:<11} {exec_host[:11]:<11} {name:<10} {_lsf_time(element.submit_time)}"
            )
        return "\n".join(lines) + "\n"

    def _select(self, operand: str) -> list[Element] | None:
        match = _JOB_ARG.match(operand)
        if match is None:
            return None
        job = self._jobs.get(int(match.group("id")))
        if job is None:
            return None
        if match.group("spec") is None:
            return list(job.elements)
        if job.indices is None:
            return None
        try:
            wanted = set(_parse_index_list(match.group("spec"), 1 << 31))
        except _UsageError:
            return None
        chosen = [e for e in job.elements if e.index in wanted]
        return chosen or None

    # --- bparams --------------------------------------------------------------------------

    def _bparams(self, request: CommandRequest) -> CommandReply:
        """``bparams [-a]``: a few cluster parameters (``-a``: ``NAME = value`` lines)."""
        unknown = [a for a in request.argv if a not in ("-a", "-l")]
        if unknown:
            raise _UsageError(
                f"bparams: illegal option -- {unknown[0].lstrip('-')}\nUsage: bparams [-h] [-V] [-a] [-l]"
            )
        if "-a" not in request.argv:
            return CommandReply(
                stdout=(
                    f"Default Queues:  {self.default_queue}\n"
                    "MBD_SLEEP_TIME used for calculations:  10 seconds\n"
                    "Job Checking Interval:  7 seconds\n"
                    "Job Accepting Interval:  0 seconds\n"
                )
            )
        params = {
            "DEFAULT_QUEUE": self.default_queue,
            "MBD_SLEEP_TIME": "10",
            "SBD_SLEEP_TIME": "7",
            "JOB_ACCEPT_INTERVAL": "0",
            "CLEAN_PERIOD": "3600",
            "MAX_JOB_ARRAY_SIZE": str(self.max_array_size),
            "JOB_TERMINATE_INTERVAL": str(int(self.kill_grace_seconds)),
            "MAX_JOBID": "999999",
        }
        # GUESS: layout of bparams -a (a header, then indented NAME = value lines).
        return CommandReply(stdout="System Parameters:\n\n" + "".join(f"    {k} = {v}\n" for k, v in params.items()))

    # --- bkill ----------------------------------------------------------------------------

    def _bkill(self, request: CommandRequest) -> CommandReply:
        argv = list(request.argv)
        signum: int | None = None
        operands: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg == "-s":
                if i + 1 >= len(argv):
                    raise _UsageError("bkill: option requires an argument -- s")
                signum = _signal_number(argv[i + 1])
                i += 1
            elif arg in ("-u", "-q", "-J", "-m", "-g", "-app", "-sla", "-C", "-stat"):
                i += 1
            elif arg in ("-r", "-b", "-d", "-l"):
                pass
            elif arg.startswith("-"):
                raise _UsageError(f"bkill: illegal option -- {arg[1:]}")
            else:
                operands.append(arg)
            i += 1
        if not operands:
            raise _UsageError("bkill: job ID or one of -app, -g, -J, -m, -q, -u is required")  # GUESS: wording
        out: list[str] = []
        err: list[str] = []
        verb = "is being signaled" if signum is not None else "is being terminated"
        for operand in operands:
            if operand == "0":
                for job in self._jobs.values():
                    for element in job.elements:
                        if element.state != "finished":
                            self._kill_one(element, signum)
                            out.append(f"Job <{element.job_id}> {verb}")
                continue
            found = self._select(operand)
            if found is None:
                err.append(f"Job <{operand}>: No matching job found")
                continue
            match = _JOB_ARG.match(operand)
            whole = match is not None and match.group("spec") is None
            live = [e for e in found if e.state != "finished"]
            done = [e for e in found if e.state == "finished"]
            for element in live:
                self._kill_one(element, signum)
            if whole:
                if live:
                    out.append(f"Job <{operand}> {verb}")
                else:
                    err.append(f"Job <{operand}>: Job has already finished")
                continue
            out.extend(f"Job <{e.job_id}> {verb}" for e in live)  # GUESS: one line per element
            job_id = found[0].seq
            # Real LSF 10.1 prints consecutive finished elements as one range ("1-2:1").
            for text in _ranges([e.index for e in done if e.index is not None]):
                err.append(f"Job <{job_id}[{text}]>: Job has already finished")
        return CommandReply(
            stdout="".join(line + "\n" for line in out),
            stderr="".join(line + "\n" for line in err),
            returncode=255 if err else 0,
        )

    def _kill_one(self, element: Element, signum: int | None) -> None:
        if signum is None:
            self.engine.kill(element, element.kill_signals)
        elif element.state == "queued":
            if signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                self.engine.kill(element, (signum,))  # GUESS: a terminating signal removes a pending job
        elif signum == signal.SIGKILL:
            self.engine.kill(element, (signal.SIGKILL,))
        else:
            self.engine.signal(element, signum)

    # --- rendering ------------------------------------------------------------------------

    def _exec_host(self, job: _Job, element: Element, table: bool = False) -> str:
        if element.start_time is None:
            return ""
        if table:
            return f"{job.slots}*{self.hostname}" if job.slots > 1 else self.hostname
        return ":".join([self.hostname] * job.slots)

    def _field(self, name: str) -> tuple[str, int, Callable[[Element], str]]:
        canonical = _ALIASES.get(name, name)
        getter = _FIELDS.get(canonical)
        if getter is None:
            raise _UsageError(f"bjobs: {name}: Illegal field name in -o format")  # GUESS: wording
        width, render = getter
        return canonical.upper(), width, lambda e: render(self, e)

    def _report(self, job: _Job, element: Element) -> str:
        code = self._exit_code(element)
        start = element.start_time or time.time()
        end = time.time()
        lines = [
            "",
            "------------------------------------------------------------",
            f"Sender: LSF System <lsfadmin@{self.hostname}>",
            f"Subject: Job {element.job_id}: <{element.name}> in cluster <{self.cluster_name}> "
            + ("Done" if code == 0 else "Exited"),
            "",
            f"Job <{element.name}> was submitted from host <{job.submit_host}> by user <{job.user}> in cluster "
            f"<{self.cluster_name}> at {time.ctime(element.submit_time)}",
            f"Job was executed on host(s) <{self.hostname}>, in queue <{job.queue}>, as user <{job.user}> in "
            f"cluster <{self.cluster_name}> at {time.ctime(start)}",
            f"<{job.home}> was used as the home directory.",
            f"<{element.cwd}> was used as the working directory.",
            f"Started at {time.ctime(start)}",
            f"Terminated at {time.ctime(end)}",
            f"Results reported at {time.ctime(end)}",
            "",
            "Your job looked like:",
            "",
            "------------------------------------------------------------",
            "# LSBATCH: User input",
            element.script_path.read_text().rstrip("\n"),
            "------------------------------------------------------------",
            "",
        ]
        if code == 0:
            lines.append("Successfully completed.")
        else:
            if element.walltime_exceeded:
                lines.append("TERM_RUNLIMIT: job killed after reaching LSF run time limit.")
            elif element.killed:
                lines.append("TERM_OWNER: job killed by owner.")
            lines.append(f"Exited with exit code {code}.")
        elapsed = int(end - start)
        lines += [
            "",
            "Resource usage summary:",
            "",
            "    CPU time :                                   0.00 sec.",
            "    Max Memory :                                 -",
            "    Average Memory :                             -",
            f"    Total Requested Memory :                     {job.memlimit or '-'}",
            "    Delta Memory :                               -",
            "    Max Swap :                                   -",
            "    Max Processes :                              -",
            "    Max Threads :                                -",
            f"    Run time :                                   {elapsed} sec.",
            f"    Turnaround time :                            {int(end - element.submit_time)} sec.",
            "",
            "The output (if any) is above this job summary.",
            "",
        ]
        stderr_file = element.stderr_final or element.stderr_path
        if stderr_file is not None and not element.merge_stderr:
            lines += ["", "", "PS:", "", f"Read file <{stderr_file}> for stderr output of this job.", ""]
        return "\n".join(lines) + "\n"


# --- fields of bjobs -o -----------------------------------------------------------------------


def _f_exit_code(emu: LsfEmulator, e: Element) -> str:
    # GUESS: a job killed while pending has an empty EXIT_CODE.
    code = emu._exit_code(e)
    return "" if e.state != "finished" or code in (None, 0, -1) else str(code)


def _f_exit_reason(emu: LsfEmulator, e: Element) -> str:
    if e.state != "finished" or not e.killed:
        return ""
    if e.walltime_exceeded:
        return "TERM_RUNLIMIT: job killed after reaching LSF run time limit"
    return "TERM_OWNER: job killed by owner"


def _f_home_relative(emu: LsfEmulator, e: Element) -> str:
    home = str(emu._jobs[e.seq].home)
    cwd = str(e.cwd)
    if cwd == home:
        return "$HOME"
    if cwd.startswith(home.rstrip("/") + "/"):
        return "$HOME" + cwd[len(home.rstrip("/")) :]
    return cwd


def _f_run_time(emu: LsfEmulator, e: Element) -> str:
    if e.start_time is None:
        return "0 second(s)"
    return f"{int((e.end_time or time.time()) - e.start_time)} second(s)"


_FIELDS: dict[str, tuple[int, Callable[[LsfEmulator, Element], str]]] = {
    "jobid": (7, lambda m, e: str(e.seq)),
    "jobindex": (8, lambda m, e: str(e.index if e.index is not None else 0)),
    "stat": (5, lambda m, e: m._native_state(e)),
    "user": (7, lambda m, e: m._jobs[e.seq].user),
    "user_group": (15, lambda m, e: ""),
    "queue": (10, lambda m, e: e.queue),
    "job_name": (10, lambda m, e: e.name),
    "job_description": (17, lambda m, e: m._jobs[e.seq].description),
    "proj_name": (11, lambda m, e: m._jobs[e.seq].project),
    "application": (13, lambda m, e: ""),
    "service_class": (13, lambda m, e: ""),
    "job_group": (10, lambda m, e: ""),
    "job_priority": (12, lambda m, e: ""),
    "dependency": (15, lambda m, e: str(e.attrs.get("dependency", ""))),
    "pend_reason": (11, lambda m, e: m._pend_reason(e)),
    "command": (15, lambda m, e: m._jobs[e.seq].command),
    "pids": (20, lambda m, e: str(e.pid) if e.pid is not None and e.state in ("running", "exiting") else ""),
    "exit_code": (10, _f_exit_code),
    "exit_reason": (50, _f_exit_reason),
    "from_host": (11, lambda m, e: m._jobs[e.seq].submit_host),
    "first_host": (11, lambda m, e: m.hostname if e.start_time is not None else ""),
    "exec_host": (11, lambda m, e: m._exec_host(m._jobs[e.seq], e)),
    "nexec_host": (10, lambda m, e: "1" if e.start_time is not None else ""),
    "alloc_slot": (20, lambda m, e: m._exec_host(m._jobs[e.seq], e)),
    "nalloc_slot": (10, lambda m, e: str(m._jobs[e.seq].slots) if e.start_time is not None else ""),
    "nreq_slot": (10, lambda m, e: str(m._jobs[e.seq].slots)),
    "slots": (5, lambda m, e: str(m._jobs[e.seq].slots) if e.start_time is not None else ""),
    "submit_time": (15, lambda m, e: _lsf_time(e.submit_time)),
    "start_time": (15, lambda m, e: _lsf_time(e.start_time) if e.start_time is not None else ""),
    "finish_time": (16, lambda m, e: _lsf_time(e.end_time) + " L" if e.state == "finished" and e.end_time else ""),
    "cpu_used": (10, lambda m, e: "0.0 second(s)"),
    "run_time": (15, _f_run_time),
    "runtimelimit": (12, lambda m, e: f"{(m._jobs[e.seq].runlimit or 0) / 60:.1f}" if m._jobs[e.seq].runlimit else ""),
    "memlimit": (8, lambda m, e: m._jobs[e.seq].memlimit),
    "max_mem": (10, lambda m, e: ""),
    "avg_mem": (10, lambda m, e: ""),
    "mem": (10, lambda m, e: ""),
    "swap": (10, lambda m, e: ""),
    "nthreads": (10, lambda m, e: ""),
    "effective_resreq": (17, lambda m, e: ("select[type == local] order[r15s:pg] " + m._jobs[e.seq].resreq).strip()),
    "output_file": (11, lambda m, e: str(e.stdout_final or e.stdout_path or "")),
    "error_file": (
        10,
        lambda m, e: str(
            (e.stdout_final or e.stdout_path) if e.merge_stderr else (e.stderr_final or e.stderr_path or "")
        ),
    ),
    "input_file": (10, lambda m, e: ""),
    "sub_cwd": (10, _f_home_relative),
    "exec_home": (10, lambda m, e: str(m._jobs[e.seq].home) if e.start_time is not None else ""),
    "exec_cwd": (10, lambda m, e: str(e.cwd) if e.start_time is not None else ""),
    "time_left": (11, lambda m, e: ""),
}
_ALIASES = {
    "id": "jobid",
    "st": "stat",
    "ugroup": "user_group",
    "name": "job_name",
    "description": "job_description",
    "proj": "proj_name",
    "project": "proj_name",
    "app": "application",
    "sla": "service_class",
    "group": "job_group",
    "priority": "job_priority",
    "cmd": "command",
    "pend_reason": "pend_reason",
}

_BJOBS_USAGE = (
    'Usage: bjobs [-h] [-V] [-A] [-a] [-aps | -l | -w] [-d] [-p] [-r] [-s] [-o "field ..." [-json]] '
    "[-noheader] [-q queue_name] [-u user_name | -u all] [-J job_name] [job_ID ...]"
)


# --- helpers --------------------------------------------------------------------------------


def _parse_bsub(argv: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``bsub`` options (LSF's multi-letter ones included) and the command words after them."""
    opts: list[tuple[str, str]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _BSUB_VALUE:
            if i + 1 >= len(argv):
                raise _UsageError(f"bsub: option requires an argument -- {arg[1:]}\n{_BSUB_USAGE}")
            opts.append((arg, argv[i + 1]))
            i += 2
        elif arg in _BSUB_FLAG:
            opts.append((arg, ""))
            i += 1
        elif arg.startswith("-") and len(arg) > 1:
            raise _UsageError(f"bsub: illegal option -- {arg[1:]}\n{_BSUB_USAGE}")
        else:
            return opts, argv[i:]
    return opts, []


_BSUB_USAGE = (
    'Usage: bsub [-J "name[index_list]%limit"] [-q queue] [-n min[,max]] [-R res_req] [-M mem_limit] '
    "[-W [hour:]minute] [-P project] [-o out_file] [-e err_file] [-Jd description] "
    '[-env "none" | "all [,~var]" | "var[=value][,...]"] [command [argument ...]]'
)


def _parse_dependency(value: str) -> tuple[str, int]:
    """``bsub -w``'s condition: ``done(N)``, ``ended(N)`` or ``N`` (which means ``done(N)``).

    Raises:
        _UsageError: another condition (the emulator supports these only).
    """
    match = re.fullmatch(r"\s*(?:(done|ended)\(\s*(\d+)\s*\)|(\d+))\s*", value)
    if match is None:
        raise _UsageError(f"{value}: the emulator supports -w 'done(N)', 'ended(N)' or 'N' only. Job not submitted.", 255)
    if match.group(3):
        return "done", int(match.group(3))
    return match.group(1), int(match.group(2))


def _parse_index_list(spec: str, max_index: int = _MAX_ARRAY_INDEX) -> list[int]:
    """``1-10``, ``1-10:2``, ``1,3,5-7``: LSF's array index list (indices >= 1)."""
    indices: list[int] = []
    for item in spec.split(","):
        match = re.match(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$", item.strip())
        if match is None:
            raise _UsageError("Bad job name. Job not submitted.")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        step = int(match.group(3) or 1)
        if low < 1 or high < low or step < 1:
            raise _UsageError("Bad job name. Job not submitted.")  # GUESS: index 0 is refused this way
        indices.extend(range(low, high + 1, step))
    indices = sorted(set(indices))
    if not indices or indices[-1] > max_index:
        raise _UsageError("Job array index too large. Job not submitted.")  # GUESS: wording
    return indices


def _check_resreq(resreq: str) -> None:
    """Shallow syntax checks of ``-R``: balanced brackets, known sections, ``key=value`` in rusage."""
    if resreq.count("[") != resreq.count("]"):
        raise _UsageError("Bad resource requirement syntax. Job not submitted.")
    sections = re.findall(r"(\w+)\[([^\]]*)\]", resreq)
    names = [name for name, _ in sections]
    for name in names:
        if name not in ("select", "order", "rusage", "span", "same", "cu", "affinity"):
            raise _UsageError(f"{name}: cannot be used in the resource requirement section. Job not submitted.")
    if len(names) != len(set(names)):
        raise _UsageError("duplicate section. Job not submitted.")
    for name, body in sections:
        if name == "rusage":
            for item in re.split(r"[,:]", body):
                _, sep, value = item.partition("=")
                if not sep or not re.match(r"^\d+(\.\d+)?[A-Za-z]*(/\w+)?$", value.strip()):
                    raise _UsageError("Error in rusage section. Job not submitted.")
        if name == "span" and not re.match(r"^(hosts|ptile|block)=\S+$", body.strip()):
            raise _UsageError("Error in span section. Job not submitted.")  # GUESS: wording


def _parse_runlimit(value: str) -> float:
    match = re.match(r"^(?:(\d+):)?(\d+)(?:/\S+)?$", value)
    if match is None:
        raise _UsageError(f"{value}: Bad RUNLIMIT specification. Job not submitted.")  # GUESS: wording
    return (int(match.group(1) or 0) * 60 + int(match.group(2))) * 60.0


def _job_environment(spec: str, env: dict[str, str]) -> dict[str, str]:
    """``-env "all" | "none" | "all, ~VAR, VAR=v" | "none, VAR, VAR=v"``."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise _UsageError("-env: Bad argument. Job not submitted.")  # GUESS: wording
    base: dict[str, str] = dict(env)
    if items[0].lower() == "none":
        base = {}
        items = items[1:]
    elif items[0].lower() == "all":
        items = items[1:]
    else:
        base = {}  # GUESS: a bare variable list submits only those variables
    for item in items:
        if item.startswith("~"):
            base.pop(item[1:], None)
            continue
        key, sep, value = item.partition("=")
        base[key] = value if sep else env.get(key, "")
    return base


def _expand_output(spec: str, cwd: Path, job_id: int, index: int | None) -> Path:
    """``%J`` -> job id, ``%I`` -> array index (0 for a plain job); a directory gets ``<jobid>.out``."""
    text = spec.replace("%J", str(job_id)).replace("%I", str(index if index is not None else 0))
    path = cwd / text
    if spec.endswith("/") or path.is_dir():
        suffix = f"{job_id}_{index}" if index is not None else str(job_id)  # GUESS: name in a directory
        return path / f"{suffix}.out"
    return path


def _signal_number(name: str) -> int:
    if name.isdigit():
        return int(name)
    upper = name.upper()
    upper = upper if upper.startswith("SIG") else "SIG" + upper
    try:
        return int(signal.Signals[upper])
    except KeyError:
        raise _UsageError(f"bkill: {name}: Illegal signal value") from None  # GUESS: wording


def _parse_format(spec: str) -> tuple[list[tuple[str, int | None]], str | None]:
    """Parse ``-o "field[:[-][width]] ... delimiter='c'"`` into ``(field, width)`` and the delimiter.

    Width ``None``: unlimited (no padding); ``0``: the field's recommended width.
    """
    delimiter: str | None = None
    match = re.search(r"delimiter='(.)'", spec)
    if match:
        delimiter = match.group(1)
        spec = spec[: match.start()] + spec[match.end() :]
    fields: list[tuple[str, int | None]] = []
    for token in spec.split():
        name, colon, width_text = token.partition(":")
        width: int | None = None
        if colon:
            digits = width_text.split(":")[0].lstrip("-")
            width = int(digits) if digits.isdigit() else 0
        fields.append((name.lower(), width))
    if not fields:
        raise _UsageError("bjobs: -o: no field specified")  # GUESS: wording
    return fields, delimiter


def _join_row(cells: Sequence[tuple[str, int]], delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter.join(text for text, _ in cells)
    return " ".join(f"{text[:width]:<{width}}" if width > 0 else text for text, width in cells).rstrip()


def _lsf_time(epoch: float) -> str:
    """``Dec 28 19:56``."""
    stamp = time.localtime(epoch)
    return time.strftime("%b", stamp) + f" {stamp.tm_mday:2d} " + time.strftime("%H:%M", stamp)


def _lsf_json(records: Sequence[dict[str, str]]) -> str:
    """LSF's JSON layout: two-space indentation, no space after colons, ``/`` escaped."""

    def string(value: str) -> str:
        out = []
        for char in value:
            if char in '"\\':
                out.append("\\" + char)
            elif char == "/":
                out.append("\\/")
            elif char == "\n":
                out.append("\\n")
            elif char == "\t":
                out.append("\\t")
            elif ord(char) < 0x20:
                out.append(f"\\u{ord(char):04x}")
            else:
                out.append(char)
        return '"' + "".join(out) + '"'

    lines = ["{", '  "COMMAND":"bjobs",', f'  "JOBS":{len(records)},', '  "RECORDS":[']
    for n, record in enumerate(records):
        lines.append("    {")
        items = list(record.items())
        for k, (key, value) in enumerate(items):
            lines.append(f"      {string(key)}:{string(value)}" + ("," if k < len(items) - 1 else ""))
        lines.append("    }" + ("," if n < len(records) - 1 else ""))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def _ranges(indices: Iterable[int]) -> list[str]:
    """Consecutive indices as LSF prints them: ``1-2:1``; single ones as ``3``."""
    values = sorted(indices)
    out: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        out.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}:1")
        i = j + 1
    return out
