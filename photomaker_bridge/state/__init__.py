"""Where clients keep what their calls share — provider slots, circuit breakers, learned numbers, spend and the
job journal — behind one interface with two backends (docs/scaling.md):

* :class:`MemoryState`: this process's memory (what every client uses when given no ``state=``);
* :class:`RedisState`: a Redis (or Valkey) server shared by many processes and machines (the ``redis`` extra).

::

    from photomaker_bridge import Bridge
    from photomaker_bridge.state import RedisState

    with Bridge(state=RedisState("redis://cache:6379/0", namespace="photos")) as bridge:
        result = bridge.generate(request, "eachlabs", idempotency_key="order-1234")

Importing this package does not import redis: ``RedisState`` imports it when made.
"""

from ._interface import OnStateError, State
from ._memory import MemoryState
from ._operations import JobEntry, JobStatus
from ._redis import RedisState

__all__ = ["JobEntry", "JobStatus", "MemoryState", "OnStateError", "RedisState", "State"]
