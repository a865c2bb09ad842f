"""The publish pipeline: validate -> sanitize -> derive (processors) -> stamp and store ->
dispatch. A feature that derives events from the flow is a `Processor` (processor.py)."""

from tickwire.pipeline.pipeline import PublishPipeline
from tickwire.pipeline.processor import Draft, Processor
from tickwire.pipeline.validate import PublishRequest, Validator, parse_publish_body

__all__ = ["Draft", "Processor", "PublishPipeline", "PublishRequest", "Validator", "parse_publish_body"]
