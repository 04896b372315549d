from __future__ import annotations

import logging
import os
import socket

import ray

from vidgru.config import RayConfig
from vidgru.errors import VidgruError

log = logging.getLogger(__name__)


class RayConnectError(VidgruError):
    exit_code = 8


def _not_token_auth_notice(record: logging.LogRecord) -> bool:
    # Ray 2.60 prints this on every local start with RAY_AUTH_MODE unset: a notice that it turned token
    # authentication on, which every vidgru command would otherwise begin with. Its other warnings (token
    # authentication *disabled* among them) still show.
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_not_token_auth_notice)

# Ray's system settings for a local start. The raylet connects to its own object store as soon as it has
# started the store's thread, and a worker to the raylet, retrying every
# raylet_client_connect_timeout_milliseconds (1000 by default, 10 attempts): in about half of the starts on
# 2 cores the store was not listening yet, and ray.init took a whole second more (3.2-3.4 s against
# 2.2-2.4; seen in raylet.out as a one-second gap before "ObjectManager server started"). Retrying every
# 100 ms, 100 times, keeps the same 10 s of patience. Values already in the environment win.
_LOCAL_RAY_ENV = {
    "RAY_raylet_client_connect_timeout_milliseconds": "100",
    "RAY_raylet_client_num_connect_attempts": "100",
}
_CONNECT_TIMEOUT_S = 5.0  # for a cluster's address: a head on the same network answers in milliseconds


def ensure_ray(cfg: RayConfig) -> None:
    """Join the cluster at ``cfg.address`` / ``RAY_ADDRESS``, or start a local Ray with the machine's cores.

    Without an address this always starts vidgru's own local Ray ("local"), even where a cluster started
    with `ray start` runs on this machine: Ray's own default would join that one, and then refuse the
    ``num_cpus`` we pass. To use a running cluster, give its address ("auto" finds a local one)."""
    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, object] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address is None:
        cores = os.cpu_count() or 1
        if cfg.num_cpus and cfg.num_cpus > cores:
            # Ray takes the number on trust and starts a worker per CPU it was told of: more processes than
            # cores, each importing torch, fighting over the cores.
            log.warning(
                "ray.num_cpus is %d but this machine has %d cores: a local Ray runs slower with more workers "
                "than cores; leave ray.num_cpus unset to use them all",
                cfg.num_cpus,
                cores,
            )
        kwargs |= {"num_cpus": cfg.num_cpus or cores, "include_dashboard": False}
        for key, value in _LOCAL_RAY_ENV.items():
            os.environ.setdefault(key, value)  # the processes ray.init starts inherit them
    else:
        _check_reachable(address)
    try:
        ray.init(address=address or "local", **kwargs)  # type: ignore[arg-type]
    except (ConnectionError, RuntimeError, ValueError) as err:
        reason = str(err).splitlines()[0]
        if address is None:
            raise RayConnectError(
                f"cannot start a local Ray ({reason}); see 'ray status' and /tmp/ray"
            ) from err
        raise RayConnectError(
            f"cannot reach a Ray cluster at {address} ({reason}); start one with "
            "'ray start --head' or leave out --address to run locally"
        ) from err


def _check_reachable(address: str) -> None:
    """Ray retries an address where nothing listens for minutes, printing only its own log lines; one TCP
    connection attempt tells the user at once. "auto" (find a local cluster) is left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # Ray's own message names a malformed address
    try:
        socket.create_connection(
            (host.strip("[]") or "127.0.0.1", int(port)), timeout=_CONNECT_TIMEOUT_S
        ).close()
    except OSError as err:
        raise RayConnectError(
            f"cannot reach a Ray cluster at {address} ({err.strerror or type(err).__name__}); start one with "
            "'ray start --head' or leave out --address to run locally"
        ) from err


def cluster_cpus() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))
