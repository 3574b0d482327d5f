from fastapi import APIRouter

from forecaster.runtime.redact import mask_credentials
from service.deps import ModelDep, StateDep
from service.schemas import AUTH_ERRORS, ErrorPublic, ModelPublic

router = APIRouter(prefix="/v1", tags=["model"], responses=AUTH_ERRORS)


@router.get("/model", response_model=ModelPublic, responses={503: {"model": ErrorPublic}})
async def model_info(loaded: ModelDep, state: StateDep) -> dict:
    """The served model: registry version, training data, validation metrics, registry health."""
    forecaster = loaded.forecaster
    return {
        "name": loaded.name,
        "version": loaded.version,
        "alias": loaded.alias,
        "run_id": loaded.run_id,
        "uri": mask_credentials(loaded.uri),
        "source": loaded.source,
        "loaded_at": loaded.loaded_at,
        "n_clusters": forecaster.clusterer_.n_clusters_,
        "regime_labels": list(forecaster.regime_labels_),
        "levels": list(forecaster.levels),
        "horizon": forecaster.config.window.horizon,
        "window": forecaster.config.window.window,
        "features": list(forecaster.config.window.features),
        "fingerprint": forecaster.fingerprint_,
        "validation_metrics": {
            k.removeprefix("val_"): float(v)
            for k, v in forecaster.metrics_.items()
            if k.startswith("val_") and "_h" not in k
        },
        "registry": state.registry,
        "registry_checked_at": state.registry_checked_at,
    }
