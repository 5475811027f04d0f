# The pipeline of dvc.yaml, one rule per DVC stage, built by workflow/graph.py from DVC's own reading
# of dvc.yaml: `snakemake` and `dvc repro` run the same graph. Run from the repo root:
#   snakemake --profile slurm             every stage a SLURM job (slurm/config.yaml)
#   snakemake --profile profiles/local    on this machine
# A successful run records its outputs in dvc.lock (dvc commit), so DVC sees them as up to date.
# What is stale is what `dvc status` says (by content), not what file dates say: see workflow/graph.py.
#   snakemake -n -p                      each job's command: the stage's own, as DVC runs it
#   snakemake --report report.html       per experiment its result images, metrics table and loss plot
#                                         (captions: workflow/report/), from the last run's outputs
# Nodes without the repo's .venv: `snakemake --profile slurm --software-deployment-method conda` runs
# every job in the conda env of workflow/envs/pix2pix.yaml (python 3.11, the torch of pyproject.toml;
# pix2pix.post-deploy.sh installs this repo into it), built once under .snakemake/conda, which the nodes
# share with the repo. Snakemake itself (this file imports the repo and DVC) still starts on each node
# from the python that submitted the job, unless --shared-fs-usage leaves out software-deployment:
# then from `python` on the nodes' PATH, e.g. that env activated (pyproject.toml brings Snakemake).
from functools import partial

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

from pix2pix.errors import UserError
from stages import params
from workflow import graph

configfile: "params.yaml"


report: "workflow/report/workflow.rst"


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
IN_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method


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
            # bound now (a loop moves on before jobs run); per job: its threads and resources (gpu)
            command=partial(GRAPH.command, stage.name, venv=not IN_CONDA),
        resources:
            **stage.resources,
        log:
            stage.log,
        conda:
            "workflow/envs/pix2pix.yaml"
        shell:
            "{params.command}"


onstart:
    graph.create_tracking_store()


onsuccess:
    GRAPH.commit(job.rule.name for job in workflow.dag.jobs)
