"""RecBole Config that knows this plugin's models and ``properties/`` defaults."""
import os

from recbole.config import Config as RecBoleConfig

from recbole_eager.utils import PROPERTIES_DIR, default_data_path, get_model


class Config(RecBoleConfig):
    """Layering: RecBole's defaults < ``properties/overall.yaml`` < ``properties/model/<M>.yaml``
    < ``properties/dataset/<D>.yaml`` < config files < config dict < command line."""

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError("model must be given (argument, config file, config dict or --model=...)")
        model_class = get_model(model) if isinstance(model, str) else model
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError("dataset must be given (argument, config file, config dict or --dataset=...)")
        return model_class.__name__, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        self.internal_config_dict["data_path"] = default_data_path()
        for path in (
            PROPERTIES_DIR / "overall.yaml",
            PROPERTIES_DIR / "model" / f"{model}.yaml",
            PROPERTIES_DIR / "dataset" / f"{dataset}.yaml",
        ):
            if os.path.isfile(path):
                config_dict = self._update_internal_config_dict(path)
                if path.parent.name == "dataset" and config_dict:
                    self.parameters["Dataset"] += [k for k in config_dict if k not in self.parameters["Dataset"]]
