from source_ultravox_usage.run import run

if __name__ == "__main__":
    run()
