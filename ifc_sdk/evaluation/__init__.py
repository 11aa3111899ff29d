"""Evaluation: dataset-wide prediction (`predict_dataset`) and YouTube-VIS metrics (`ifc_sdk.evaluation.ytvis`)."""

from ifc_sdk.evaluation.predict import predict_dataset

__all__ = ["predict_dataset"]
