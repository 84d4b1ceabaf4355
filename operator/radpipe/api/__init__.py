"""radpipe.api"""
