"""radpipe.web"""
