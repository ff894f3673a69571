"""Runs and delivery spread over Celery workers.

Without a broker (the embedded default) nothing here is used: runs execute in the
calling process through the same pipeline functions the tasks call.
"""
