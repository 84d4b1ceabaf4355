"""radpipe.stages"""
