"""Deployment: manifests for Kubernetes, Seldon Core and KServe, and their offline validation.

`render` builds them (`maestrale deploy render`); `validate` checks them against the Kubernetes
schemas and the CRD schemas in `schemas/` (`maestrale deploy validate`, needs the dev extra). The
Helm chart lives in `deploy/helm/maestrale` at the repository root.

>>> from maestrale.deploy import render
>>> [d["kind"] for d in render("pv-forecast@champion", "seldon-v1")]
['SeldonDeployment']
"""

from __future__ import annotations

from maestrale.deploy.render import TARGETS, RenderOptions, render, to_yaml

__all__ = ["TARGETS", "RenderOptions", "render", "to_yaml"]
