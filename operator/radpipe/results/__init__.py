"""radpipe.results"""
