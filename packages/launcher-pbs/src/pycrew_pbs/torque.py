"""TORQUE's dialect of PBS: :class:`TorqueCLI` (``qsub -t``, ``PBS_ARRAYID``, ``qstat -f`` text).

Where TORQUE differs from PBS Pro (TORQUE's qsub(1B), qstat(1B) and "Job arrays" guide):
arrays are ``-t 1-n`` and elements read ``PBS_ARRAYID``; ``qstat`` has no JSON and its
``-x`` is XML, so the monitor reads ``qstat -f -t`` text; completed jobs stay listed in
state ``C`` for the server's ``keep_completed`` seconds; there is no direct_write, so an
element's output file appears when it ends; the server's array limit is
``max_job_array_size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pycrew import LauncherInfo, WorkerCall
from pycrew.scheduler import JobRecord, SchedulerError
from pycrew_pbs.pbs import PbsCLI, tag_digest
from pycrew_pbs.qstat import output_path, parse_qstat_text


class TorqueCLI(PbsCLI):
    """Workers as TORQUE job arrays: ``qsub -t``, ``qdel``, ``qstat -f -t`` (text).

    TORQUE keeps completed jobs in ``qstat`` (state ``C``) for the server's
    ``keep_completed`` seconds; it has no ``-x`` (that is XML there) and no JSON output.
    """

    array_index_variable: ClassVar[str] = "PBS_ARRAYID"
    array_flag: ClassVar[str] = "-t"
    #: ``qstat`` keeps completed jobs only for ``keep_completed`` seconds (often 0): a running
    #: job missing from the listing has ended (see :mod:`pycrew.scheduler.departures`).
    listing_keeps_ended: ClassVar[bool] = False

    def keep_directives(self) -> list[str]:
        """TORQUE has no direct_write: the output file appears when the job ends."""
        return []

    def default_log_output(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> str:
        """The output file of one submission under ``<directory>/logs``; TORQUE names an element's ``<file>-<index>``."""
        return str(self.private_directory("logs") / f"{self.job_name(launcher, calls)}-{tag_digest(tag)}.log")

    def element_log(self, pattern: str, index: int, array: bool) -> str:
        """An element's output file: ``<-o path>-<index>`` (a guess, see the docs), a plain job's the path."""
        path = output_path(pattern, None)
        return f"{path}-{index}" if array and not path.endswith(f"-{index}") else path

    def server_format(self) -> list[str]:
        """TORQUE's ``qstat -B -f`` prints text only."""
        return []

    def site_array_max(self) -> int:
        """The server's ``max_job_array_size`` (``qstat -B -f``); 10000 if unset (TORQUE: no limit)."""
        return self.array_limit(self.server_attributes(), "max_job_array_size")

    def departed_hint(self, record: JobRecord) -> str:
        """An element the server dropped at its end (``keep_completed`` is 0 or short)."""
        return f"the server keeps completed jobs for keep_completed seconds; tracejob {record.id} on the server host has its exit status"

    def list_command(self) -> list[str]:
        """``qstat -f -t``: every job and array element, completed ones (``C``) included."""
        return [self.command("qstat"), "-f", "-t"]

    def query_command(self, records: Sequence[JobRecord]) -> list[str]:
        """``qstat -f -t <ids>``: the jobs missing from a listing, one by one (``Unknown Job Id`` if gone)."""
        return [*self.list_command(), *(self.element_handle(r.array_id, r.index) for r in records)]

    def parse_jobs(self, stdout: str) -> dict[str, dict[str, Any]]:
        """The ``qstat -f`` text blocks as ``{job id: attributes}``.

        Raises:
            SchedulerError: (transient) the text is cut short: qstat ends every block with an
                empty line, and every block has a ``job_state``; a listing that lost its end
                must not make jobs read as gone.
        """
        jobs = parse_qstat_text(stdout)
        cut = [job_id for job_id, attrs in jobs.items() if "job_state" not in attrs]
        if jobs and (cut or not stdout.endswith("\n\n")):
            raise SchedulerError(
                f"qstat -f -t printed a listing cut short (the block of {cut[0] if cut else list(jobs)[-1]} is "
                f"incomplete): {stdout[-200:]!r}", self.list_command(), 0, "", transient=True,
            )
        return dict(jobs)
