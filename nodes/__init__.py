"""ComfyUI node classes: thin adapters from ComfyUI's types and runtime to the `stereocrafter` library."""
