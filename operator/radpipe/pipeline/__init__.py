"""radpipe.pipeline"""
