"""The exception types that mean "the user's input or environment needs fixing" (shown without a traceback)."""

from llm2llm_jax.assets import AssetError
from llm2llm_jax.data import DataError
from llm2llm_jax.loop import RunError
from llm2llm_jax.model.config import ConfigError
from llm2llm_jax.model.weights import WeightError
from llm2llm_jax.parallel import ShardingError
from llm2llm_jax.tasks import TaskError
from llm2llm_jax.teacher.backends import TeacherError

USER_ERRORS = (AssetError, ConfigError, DataError, RunError, ShardingError, TaskError, TeacherError, WeightError,
               FileExistsError)
