"""A model directory: weights, calibration, the config used, and metadata, versioned.

Layout::

    MODEL_DIR/model.pt           GRU ensemble and descriptor space
    MODEL_DIR/calibration.json   normal score quantiles
    MODEL_DIR/config.yaml        the config the model was trained with
    MODEL_DIR/meta.json          format version, backbone weights used, training data
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import pickle
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
import yaml

from vidgru.behaviour import BehaviourGRU, BehaviourModel
from vidgru.config import BehaviourConfig, dump_config
from vidgru.config.loader import config_from_dict
from vidgru.descriptors import DescriptorSpace
from vidgru.errors import ConfigError, InputError, ModelError, ModelVersionError
from vidgru.occupancy import BACKGROUND_JSON, SceneBackground
from vidgru.outputs import check_output_parent
from vidgru.scoring import Calibration
from vidgru.tampering import REFERENCE_JSON as TAMPER_FILE
from vidgru.tampering import TamperReference
from vidgru.temporal import CellGRU, TemporalModel
from vidgru.track_model import TrackGRU, TrackModel
from vidgru.training import TrainedModel

MODEL_FORMAT = 1
# A per-track model with more than one set of GRUs (behaviour.specialists) is written as format 2: a vidgru
# that reads only format 1 would take its sets for one and average them, and must refuse it instead. Every
# other model stays format 1, readable by those versions as before.
MODEL_FORMAT_SETS = 2
# A per-track model whose tracks were made from blobs on every other frame (the background's detect_every)
# is written as format 3, with one set or more: a vidgru that reads formats 1 and 2 would track its camera on
# every frame, which its track GRUs did not learn from, and must refuse it instead.
MODEL_FORMAT_LOOKS = 3
# A model whose empty scene reads colour as well as grey (a background fitted on colour footage) is written
# as format 4: a vidgru that reads formats 1 to 3 would ignore the colour, and make smaller blobs and
# occupancy than the model learnt from, and must refuse it instead.
MODEL_FORMAT_COLOUR = 4
READABLE_FORMATS = (MODEL_FORMAT, MODEL_FORMAT_SETS, MODEL_FORMAT_LOOKS, MODEL_FORMAT_COLOUR)


def vidgru_version() -> str:
    try:
        return version("vidgru")
    except PackageNotFoundError:
        return "unknown"


def check_model_out(out: Path) -> None:
    """Before training: ``out`` can become the model directory. A folder that holds other files and no model
    is refused, since saving replaces the whole folder."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder path for the model")
    if out.is_dir() and any(out.iterdir()) and not (out / "meta.json").is_file():
        raise InputError(
            f"--out {out} holds other files and no vidgru model; give a new or empty folder "
            "(saving a model replaces the whole folder)"
        )
    check_output_parent(out, "--out")


def save_model(model: TrainedModel, out: str | Path) -> str:
    """Write ``model`` to ``out`` and return its id (directory name plus a hash of the weights).

    The model is written beside ``out`` first and then takes its place, so a model trained into an existing
    model directory replaces it whole (no file of the old one stays), and a failure while writing leaves
    the old one as it was."""
    final = Path(out)
    if final.resolve() == Path.cwd().resolve():  # the working directory cannot be swapped out from under us
        final.mkdir(parents=True, exist_ok=True)
        return _write_model(model, final, final)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        model_id = _write_model(model, partial, final)
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            final.rename(old)
            partial.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            partial.rename(final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return model_id


def _write_model(model: TrainedModel, out: Path, final: Path) -> str:
    """Every file of the model into ``out``; its id names ``final``, the directory it will be read from."""
    tc = model.config.temporal
    payload = {
        "descriptors": {k: torch.from_numpy(v) for k, v in model.descriptors.state().items()},
        "nets": model.temporal.state_dicts(),
        "in_dim": model.descriptors.dim,
        "n_cells": model.temporal.n_cells,
        "window": tc.window,
    }
    if model.behaviour is not None and model.behaviour_calibration is not None:
        payload["behaviour"] = _memory_payload(model.behaviour, model.behaviour_calibration)
        payload["behaviour"]["n_cells"] = model.behaviour.n_cells
    if model.tracks is not None and model.tracks_calibration is not None:
        payload["tracks"] = {
            **_memory_payload(model.tracks, model.tracks_calibration),
            "groups": model.tracks.groups,
            "norms": model.tracks.norms,
        }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    (out / "model.pt").write_bytes(buffer.getvalue())
    model_id = f"{final.name}@{hashlib.sha256(buffer.getvalue()).hexdigest()[:10]}"
    (out / "calibration.json").write_text(json.dumps(model.calibration.to_dict(), indent=2) + "\n")
    (out / "config.yaml").write_text(dump_config(model.config))
    sets = len(model.tracks.norms) if model.tracks is not None else 1
    model_format = MODEL_FORMAT_SETS if sets > 1 else MODEL_FORMAT
    if model.tracks is not None and model.background is not None and model.background.detect_every != 1:
        model_format = MODEL_FORMAT_LOOKS
    if model.background is not None and model.background.colour is not None:
        model_format = MODEL_FORMAT_COLOUR
    meta = {
        "format": model_format,
        "vidgru_version": vidgru_version(),
        "model_id": model_id,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "backbone_weights": model.weights,
        **model.meta,
    }
    meta["format"] = model_format  # also when a loaded model (whose meta has one) is saved again
    if model.tamper is not None:
        model.tamper.save(out)
    if model.background is not None:
        model.background.save(out)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    model.meta = meta
    return model_id


def _memory_payload(model: BehaviourModel | TrackModel, calibration: Calibration) -> dict[str, Any]:
    """What the region and the per-track GRU models save alike: their nets, the standardisation of their
    input, their memory and their calibration."""
    return {
        "nets": model.state_dicts(),
        "mean": torch.from_numpy(model.mean),
        "std": torch.from_numpy(model.std),
        "memory": model.memory,
        "calibration": calibration.to_dict(),
    }


def load_model(path: str | Path) -> TrainedModel:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ModelError(
            f"{path} is a file, not a model directory; give the folder that 'vidgru train --out' wrote"
        )
    if not path.is_dir():
        raise ModelError(f"model directory {path} does not exist; train one with 'vidgru train --out {path}'")
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        raise ModelError(
            f"{path} is not a vidgru model directory (no meta.json); train one with 'vidgru train'"
        )
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as err:
        raise ModelError(f"{meta_file} is not valid JSON; retrain the model with 'vidgru train'") from err
    if meta.get("format") not in READABLE_FORMATS:
        *first, last = (str(f) for f in READABLE_FORMATS)
        readable = f"{', '.join(first)} and {last}"
        raise ModelVersionError(
            f"{path} was written by vidgru {meta.get('vidgru_version', '?')} (model format "
            f"{meta.get('format')}); this vidgru reads formats {readable}; retrain it with 'vidgru train'"
        )
    missing = [n for n in ("model.pt", "calibration.json", "config.yaml") if not (path / n).is_file()]
    if missing:
        raise ModelError(
            f"{path} is incomplete (missing {', '.join(missing)}); retrain it with 'vidgru train'"
        )
    try:
        raw = yaml.safe_load((path / "config.yaml").read_text())
        # Keys added after a model was trained take the behaviour it was trained with, not today's default:
        # models from before changed-region flow computed flow over the whole frame, before strided
        # statistics read every pixel, before dis_refinement DIS refined once, and before region_model a
        # behaviour model always had its region GRU.
        trained_with = {
            "motion": {"change_threshold": 0, "stats_stride": 1, "dis_refinement": 1},
            "behaviour": {"region_model": True},
        }
        for section, keys in trained_with.items():
            if isinstance(raw, dict) and isinstance(raw.get(section), dict):
                for key, value in keys.items():
                    raw[section].setdefault(key, value)
        cfg = config_from_dict(raw, str(path / "config.yaml"))
        try:
            payload = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
        except (EOFError, pickle.UnpicklingError, RuntimeError, OSError) as err:
            # torch.load says "Invalid argument" of a cut-short file and EOFError of an empty one.
            raise ModelError(
                f"{path / 'model.pt'} is damaged or is not a vidgru model file ({type(err).__name__}); "
                "retrain it with 'vidgru train'"
            ) from err
        calibration = Calibration(**json.loads((path / "calibration.json").read_text()))
        tc = cfg.temporal
        nets = []
        for state in payload["nets"]:
            net = CellGRU(payload["in_dim"], payload["n_cells"], tc.hidden, tc.position_dim)
            net.load_state_dict(state)
            nets.append(net)
        descriptors = DescriptorSpace.from_state({k: v.numpy() for k, v in payload["descriptors"].items()})
        behaviour, behaviour_calibration = _load_behaviour(payload.get("behaviour"), cfg.behaviour)
        tracks, tracks_calibration = _load_tracks(payload.get("tracks"), cfg.behaviour)
        background = SceneBackground.load(path) if (path / BACKGROUND_JSON).is_file() else None
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, ConfigError, yaml.YAMLError) as err:
        detail = " ".join(str(err).split())  # a YAML error spans several lines, with a caret
        raise ModelError(f"{path} could not be loaded ({detail}); retrain it with 'vidgru train'") from err
    temporal = TemporalModel(nets, payload["window"], payload["n_cells"])
    # Models trained before tampering detection have no reference; they score as before, without it.
    tamper = TamperReference.load(path) if (path / TAMPER_FILE).is_file() else None
    return TrainedModel(
        cfg,
        descriptors,
        temporal,
        calibration,
        meta.get("backbone_weights", {}),
        meta,
        tamper,
        background,
        behaviour if background is not None else None,
        behaviour_calibration,
        tracks if background is not None else None,
        tracks_calibration,
    )


def _load_behaviour(
    saved: dict | None, cfg: BehaviourConfig
) -> tuple[BehaviourModel | None, Calibration | None]:
    """Models trained before the behaviour model (or with it disabled) have none and score without it."""
    if not saved:
        return None, None
    nets = []
    for state in saved["nets"]:
        net = BehaviourGRU(saved["n_cells"], cfg.hidden, cfg.position_dim)
        net.load_state_dict(state)
        nets.append(net)
    model = BehaviourModel(
        nets, saved["mean"].numpy(), saved["std"].numpy(), saved["n_cells"], int(saved["memory"])
    )
    return model, Calibration(**saved["calibration"])


def _load_tracks(saved: dict | None, cfg: BehaviourConfig) -> tuple[TrackModel | None, Calibration | None]:
    """Models trained before the per-track GRU (or without it) have none and score without it."""
    if not saved:
        return None, None
    nets = []
    for state in saved["nets"]:
        net = TrackGRU(cfg.hidden)
        net.load_state_dict(state)
        nets.append(net)
    # Models saved before sets of GRUs have one set, on its logits' own scale.
    model = TrackModel(
        nets,
        saved["mean"].numpy(),
        saved["std"].numpy(),
        int(saved["memory"]),
        cfg.hold_steps,
        saved.get("groups"),
        saved.get("norms"),
    )
    return model, Calibration(**saved["calibration"])
