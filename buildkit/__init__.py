"""Build, serve and fixture tooling: what `script/` runs. Not part of any image at run time."""
