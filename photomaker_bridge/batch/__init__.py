"""Many PhotoMaker jobs at once: a resumable batch runner, ``compare`` across providers, summaries and a report.

Compare providers side by side (every reference set × prompt × style × seed on every provider)::

    from photomaker_bridge.batch import CompareMatrix, compare

    matrix = CompareMatrix(face_sets=[["face.jpg"]], prompts=["a photo of a man img on a boat"],
                           providers=["runware", "fal", "eachlabs"], styles=["cinematic"], seeds=[42, 43])
    outcome = compare(matrix, "results/")          # refuses above max_cost (1 USD) before any request
    print(outcome.files.report)                    # results/report.html

Run any jobs with a journal that survives a crash (re-run to finish; nothing is paid twice)::

    from photomaker_bridge.batch import BatchJob, JobFile, run_batch, write_outputs

    run_batch(JobFile("jobs.jsonl", default_provider="fal"), "results/")
    write_outputs(Path("results"))

``docs/compare-and-batch.md`` describes the journal, the summary's definitions and the report.
"""

from .artifacts import OutputFiles, write_outputs
from .compare import DEFAULT_MAX_COST, CompareMatrix, CompareOutcome, acompare, compare
from .estimate import CostEstimate, ProviderEstimate
from .jobs import BatchJob, JobLabels, job_key
from .journal import JOURNAL_NAME, JournalState, PendingJob, scan_journal
from .jsonl import JobFile, LineProblem
from .preflight import Preflight, check_cost, preflight
from .progress import BatchEvent, BatchProgress, ProviderProgress
from .runner import BatchOptions, BatchOutcome, arun_batch, run_batch
from .summary import ProviderSummary, Summary, latest_finished, summarize_journal

__all__ = [
    "DEFAULT_MAX_COST",
    "JOURNAL_NAME",
    "BatchEvent",
    "BatchJob",
    "BatchOptions",
    "BatchOutcome",
    "BatchProgress",
    "CompareMatrix",
    "CompareOutcome",
    "CostEstimate",
    "JobFile",
    "JobLabels",
    "JournalState",
    "LineProblem",
    "OutputFiles",
    "PendingJob",
    "Preflight",
    "ProviderEstimate",
    "ProviderProgress",
    "ProviderSummary",
    "Summary",
    "acompare",
    "arun_batch",
    "check_cost",
    "compare",
    "job_key",
    "latest_finished",
    "preflight",
    "run_batch",
    "scan_journal",
    "summarize_journal",
    "write_outputs",
]
