from source_ultravox_usage.source import SourceUltravoxUsage

__all__ = ["SourceUltravoxUsage"]
