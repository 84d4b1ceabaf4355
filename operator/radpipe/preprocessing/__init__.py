"""radpipe.preprocessing"""
