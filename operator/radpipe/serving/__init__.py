"""radpipe.serving"""
