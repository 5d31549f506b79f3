"""The OFD stand-in (оператор фискальных данных): receives drive containers and acknowledges them."""
