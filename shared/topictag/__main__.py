from topictag.cli import app

if __name__ == "__main__":  # vLLM's engine workers are spawned: they re-import this module
    app(prog_name="topictag")
