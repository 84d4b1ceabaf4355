"""radpipe.intake"""
