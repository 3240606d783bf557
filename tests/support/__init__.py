"""Helpers the tests share that are neither fixtures nor fakes."""
