#!/usr/bin/env bash
# Reproduces the paper's Section VI (Tables I–IV, Fig. 2, ablations) into results/.
#   bash experiments/reproduce_section6.sh BOSTON_CSV [RUNS_DIR]
# CIFAR-10 must be in data_cache/ first (README: python -m experiments.import_cifar10 ...).
# Every run resumes where it stopped; EXTRA_FLAGS (e.g. "--config.seeds=(0,)") go to each run.
set -euo pipefail
BOSTON_CSV=${1:?usage: bash experiments/reproduce_section6.sh BOSTON_CSV [RUNS_DIR]}
RUNS=${2:-runs}
EXTRA_FLAGS=${EXTRA_FLAGS:-}
run() {  # run NAME[:ARG] WORKDIR [flags...]
  local config=$1 workdir=$2; shift 2
  python -m experiments.run --config="$config" --workdir="$RUNS/$workdir" "$@" $EXTRA_FLAGS
}
run synthetic_regression synthetic_regression
run synthetic_classification synthetic_classification
run boston boston --config.data.csv_path="$BOSTON_CSV"
run iris iris
run wine wine
run synthetic_regression:ablations ablations_synthetic_regression
run cifar_subset cifar_subset

python -m experiments.report --workdirs="$RUNS/synthetic_regression" --table=I \
  --out=results/table1_synthetic_regression
python -m experiments.report --workdirs="$RUNS/synthetic_classification" --table=II \
  --out=results/table2_synthetic_classification
python -m experiments.report --workdirs="$RUNS/boston,$RUNS/iris,$RUNS/wine" --table=III \
  --out=results/table3_uci
python -m experiments.report --workdirs="$RUNS/cifar_subset" --table=IV \
  --out=results/table4_cifar_subset
python -m experiments.report --workdirs="$RUNS/ablations_synthetic_regression" \
  --table=ablation --out=results/ablations_synthetic_regression
for name in synthetic_regression cifar_subset ablations_synthetic_regression; do
  python -m experiments.plots --workdir="$RUNS/$name" --out="results/figures/$name"
done
