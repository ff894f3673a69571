"""Runs and delivery spread over Celery workers (used only when a broker is configured).

    app        the Celery application, configured from Settings (nothing connects at import)
    executor   CeleryExecutor: a run's shards queued as tasks, by name
    slots      delivery slots (Redis keys) and queuing `deliver` tasks, by name
    draining   one delivery worker per worker process, draining the outbox for a while
    tasks      the task definitions (an entry point): thin wrappers over pipeline.shards and draining

Imports go one way: tasks -> draining -> slots -> app, and executor -> slots -> app; nothing
imports tasks (tasks are sent by name). May import pipeline, delivery, settings and errors;
never SQLAlchemy (the store is reached through the pipeline's services).
"""
