#!/usr/bin/env bash
# Reproduces the paper's Section VI (Tables I–IV, Fig. 2, ablations): runs into RUNS_DIR, then
# tables and figures into results/. See RESULTS.md for what each run measured.
#   bash experiments/reproduce_section6.sh BOSTON_CSV [RUNS_DIR]
# CIFAR-10: from data_cache/ (README, "Data"), or, with CIFAR_NPZ_DIR set to a folder holding
# train_subset.npz and test_public.npz, straight from those files (numpy only, no TensorFlow).
# Every run resumes where it stopped. The cifar_subset run includes ResNet-18 with its search:
# about a day on a 2-core CPU (176 s an epoch), far less on a GPU (not measured here);
# RESULTS.md says which part of it ran. fig2_cifar tracks all three networks' kernels under
# one fixed 8-epoch schedule, one seed, 32 probe images (kernels materialized: 32 ≤ 512 probes).
set -euo pipefail
BOSTON_CSV=${1:?usage: bash experiments/reproduce_section6.sh BOSTON_CSV [RUNS_DIR]}
RUNS=${2:-runs}
CIFAR=()
if [[ -n "${CIFAR_NPZ_DIR:-}" ]]; then
  CIFAR=(--config.data.source=npz --config.data.train_npz="$CIFAR_NPZ_DIR/train_subset.npz"
    --config.data.test_npz="$CIFAR_NPZ_DIR/test_public.npz")
fi
NETWORKS="('ntk_ecrn', 'mlp', 'resnet18')"
run() {  # run NAME[:ARG] WORKDIR [flags...]
  local config=$1 workdir=$2; shift 2
  python -m experiments.run --config="$config" --workdir="$RUNS/$workdir" "$@"
}
# A tuple of strings as a Python literal (ml_collections config flags).
ABLATIONS="('ntk_ecrn_no_fourier', 'ntk_ecrn_alpha1', 'ntk_ecrn_no_stochastic_depth', \
'ntk_ecrn_drop_rate_0p1', 'ntk_ecrn_sigma_ff_x0p25', 'ntk_ecrn_sigma_ff_x4', 'ntk_ecrn_sigma_ff_x16')"

run synthetic_regression:hard synthetic_regression   # s = 0.25
run synthetic_regression synthetic_regression_f0.1 --config.data.frequency_scale=0.1
run synthetic_regression:ablations ablations_f0.1 --config.data.frequency_scale=0.1 \
  --config.models="$ABLATIONS"
run synthetic_classification synthetic_classification
run boston boston --config.data.csv_path="$BOSTON_CSV"
run iris iris
run wine wine
run cifar_subset cifar_subset "${CIFAR[@]}"
run cifar_subset fig2_cifar "${CIFAR[@]}" --config.models="$NETWORKS" \
  --config.tracking.models="$NETWORKS" --config.seeds='(0,)' --config.search.enabled=False \
  --config.train.epochs=8 --config.tracking.every=2 --config.tracking.probe_size=32 \
  --config.checkpoint_every=1

report() {  # report TABLE OUT WORKDIR[,WORKDIR...]
  python -m experiments.report --table="$1" --out="results/$2" --workdirs="$3"
}
report I table1_synthetic_regression "$RUNS/synthetic_regression"
report I table1_synthetic_regression_f0.1 "$RUNS/synthetic_regression_f0.1"
report II table2_synthetic_classification "$RUNS/synthetic_classification"
report III table3_uci "$RUNS/boston,$RUNS/iris,$RUNS/wine"
report IV table4_cifar_subset "$RUNS/cifar_subset"
report ablation ablations_f0.1 "$RUNS/synthetic_regression_f0.1,$RUNS/ablations_f0.1"
for name in synthetic_regression synthetic_regression_f0.1 ablations_f0.1 cifar_subset fig2_cifar; do
  python -m experiments.plots --workdir="$RUNS/$name" --out="results/figures/$name"
done
