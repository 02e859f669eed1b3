from recbole_eager.data.utils import create_dataset

__all__ = ["create_dataset"]
