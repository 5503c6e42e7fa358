"""ecrn_jax: the NTK-ECRN, its empirical NTK and its infinite-width twin in JAX.

Importing this package never imports neural_tangents or TensorFlow; the infinite-width
functions import neural_tangents when first called.
"""

from ecrn_jax._src.config import ECRNConfig
from ecrn_jax._src.config import MLPConfig
from ecrn_jax._src.empirical import empirical_nngp
from ecrn_jax._src.empirical import empirical_ntk
from ecrn_jax._src.empirical import ntk_vp_fn
from ecrn_jax._src.infinite import ExpectedKernels
from ecrn_jax._src.infinite import InfiniteKernels
from ecrn_jax._src.infinite import embed_inputs
from ecrn_jax._src.infinite import expected_kernels_stochastic_depth
from ecrn_jax._src.infinite import infinite_kernels
from ecrn_jax._src.infinite import stax_twin
from ecrn_jax._src.infinite import to_stax_params
from ecrn_jax._src.models import Dense
from ecrn_jax._src.models import ECRN
from ecrn_jax._src.models import FourierFeatures
from ecrn_jax._src.models import MLP
from ecrn_jax._src.models import fourier_embed
from ecrn_jax._src.models import fourier_matrix

__version__ = '0.1.0'
