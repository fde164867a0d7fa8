"""The metallb.io objects of one namespace, watched and turned into Config snapshots (shared by both programs).

An invalid set of objects is reported (ConfigurationState, a Warning event, a log line, the stale metric) and the
last valid Config keeps serving: `current` only ever moves from one valid Config to the next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from metallb_fast.config import Config, ConfigError, parse_config
from metallb_fast.k8s.client import Json, KubeClient
from metallb_fast.k8s.informer import Handler, Informer, Resource
from metallb_fast.k8s.writers import EventRecorder, LatestStateWriter, ObjectRef, write_configuration_state
from metallb_fast.obs import metrics
from metallb_fast.vocabulary import (
    API_VERSION_V1BETA1,
    LABEL_COMPONENT_TYPE,
    LABEL_NODE_NAME,
    METALLB_V1BETA1_PATH,
    METALLB_V1BETA2_PATH,
)

log = logging.getLogger(__name__)

# (group version path, plural) of every kind the Config is built from; BGPPeer is read in its storage version.
CONFIG_RESOURCES: tuple[tuple[str, str], ...] = (
    (METALLB_V1BETA1_PATH, "ipaddresspools"),
    (METALLB_V1BETA1_PATH, "l2advertisements"),
    (METALLB_V1BETA1_PATH, "bgpadvertisements"),
    (METALLB_V1BETA2_PATH, "bgppeers"),
    (METALLB_V1BETA1_PATH, "communities"),
    (METALLB_V1BETA1_PATH, "bfdprofiles"),
)

INVALID_CONFIG_REASON = "InvalidConfiguration"


@dataclass(frozen=True)
class ConfigStateTarget:
    """Which ConfigurationState object this program owns (MetalLB: "controller" or "speaker-<node>")."""

    name: str
    component: str  # "controller" | "speaker"
    node: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        labels = {LABEL_COMPONENT_TYPE: self.component}
        if self.node:
            labels[LABEL_NODE_NAME] = self.node
        return labels


class ConfigSource:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        on_change: Handler,
        recorder: EventRecorder,
        state: ConfigStateTarget,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.recorder = recorder
        self.state = state
        self.current: Config | None = None
        self.last_error: str | None = None
        self._state_writer: LatestStateWriter[tuple[bool, str]] = LatestStateWriter(
            "configurationstate", self._write_state
        )
        self.informers: list[Informer[Json]] = [
            Informer(client, Resource(gv, plural, namespace=namespace), on_change, name=plural)
            for gv, plural in CONFIG_RESOURCES
        ]

    def start(self) -> None:
        for informer in self.informers:
            informer.start()

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop()
        self._state_writer.close(timeout=5.0)

    def objects(self) -> list[dict]:
        return [obj for informer in self.informers for obj in informer.snapshot()]

    def reload(self) -> bool:
        """Parse the cached objects; True when `current` changed to a new valid Config."""
        try:
            config = parse_config(self.objects())
        except ConfigError as error:
            summary = "; ".join(str(p) for p in error.problems)
            if summary != self.last_error:
                log.error(
                    "invalid configuration, keeping the last valid one", extra={"op": "setConfig", "error": summary}
                )
                self._report(valid=False, summary=summary)
                self.last_error = summary
            metrics.config_stale.set(1)
            return False
        if self.last_error is not None or self.current is None:
            self._report(valid=True, summary="")
        self.last_error = None
        metrics.config_stale.set(0)
        metrics.config_loaded.set(1)
        if config == self.current:
            return False
        self.current = config
        log.info("configuration loaded", extra={"op": "setConfig", "pools": [p.name for p in config.pools]})
        return True

    def _report(self, *, valid: bool, summary: str) -> None:
        # The write goes through a background writer: reloading must not wait on the API server.
        self._state_writer.submit((valid, summary))
        if not valid:
            ref = ObjectRef(
                kind="ConfigurationState",
                namespace=self.namespace,
                name=self.state.name,
                api_version=API_VERSION_V1BETA1,
            )
            self.recorder.record(ref, "Warning", INVALID_CONFIG_REASON, summary)

    def _write_state(self, state: tuple[bool, str]) -> None:
        valid, summary = state
        write_configuration_state(self.client, self.namespace, self.state.name, valid, summary, self.state.labels)
