"""The DreamBooth trainer: photos in, output.zip out."""
