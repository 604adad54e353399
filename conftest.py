pytest_plugins = ["ultravox_sandbox.pytest_plugin"]
