"""radpipe.series"""
