# The pipeline of dvc.yaml, one rule per DVC stage, built by workflow/graph.py from DVC's own reading
# of dvc.yaml: `snakemake` and `dvc repro` run the same graph. Run from the repo root:
#   snakemake --profile slurm             every stage a SLURM job (slurm/config.yaml)
#   snakemake --profile profiles/local    on this machine
# A successful run records its outputs in dvc.lock (dvc commit), so DVC sees them as up to date.
# What is stale is what `dvc status` says (by content), not what file dates say: see workflow/graph.py.
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from pix2pix.errors import UserError
from stages import params
from workflow import graph

configfile: "params.yaml"


# Before any job: the schema (types, choices, ranges), then the checks across options that the
# stages make (e.g. crop_size <= load_size), with the same one-line message a stage would give.
validate(config, "workflow/schemas/params.schema.json", set_default=False)
try:
    params.validate("params.yaml", config)
except UserError as exc:
    raise WorkflowError(str(exc)) from None

GRAPH = graph.load(workflow.basedir)
# A job that Snakemake spawns (SLURM) runs what the main process chose.
RERUN = GRAPH.mark(graph.stale(workflow.basedir)) if workflow.is_main_process else set()


rule all:
    input:
        GRAPH.targets,
    default_target: True


for stage in GRAPH.stages.values():

    rule:
        name:
            stage.name
        input:
            GRAPH.inputs(stage, stage.name in RERUN),
        output:
            GRAPH.outputs(stage),
        params:
            cmd=stage.cmd,  # bound now: in a loop, a rule's action runs after the loop has moved on
            **GRAPH.params(stage, config),
        resources:
            **stage.resources,
        log:
            stage.log,
        run:
            GRAPH.run(rule, params, threads, resources, log[0])


onstart:
    graph.create_tracking_store()


onsuccess:
    GRAPH.commit(job.rule.name for job in workflow.dag.jobs)
