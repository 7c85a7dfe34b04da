module example.com/shop/stock

go 1.26
