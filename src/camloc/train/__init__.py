"""Training (see :mod:`camloc.train.run`)."""

from camloc.train.config import TrainConfig, apply_overrides, config_from_dict, load_config, model_arg_line
from camloc.train.run import (METRIC_COLUMNS, TrainResult, _Dist, _loaders, _param_groups, build_net, check_model,
                              check_split, init_weights, rng_state, seed_everything, set_rng_state, train, train_epoch)
